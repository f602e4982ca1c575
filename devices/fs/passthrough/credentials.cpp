// Per-thread credential switching with raw setresuid/setresgid/setgroups syscalls.
#include "passthrough/credentials.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

namespace vfsdax::fs::passthrough {

namespace {

long raw_setresuid(uid_t euid) {
    return ::syscall(SYS_setresuid, -1, euid, -1);
}
long raw_setresgid(gid_t egid) {
    return ::syscall(SYS_setresgid, -1, egid, -1);
}
long raw_setgroups(std::span<const gid_t> groups) {
    return ::syscall(SYS_setgroups, groups.size(), groups.data());
}

// Back to root. Failing here would leave a worker thread running as a guest user with no way
// to regain root for the next request; no state is safe to continue from.
void restore_root() {
    if (raw_setresuid(0) != 0 || raw_setresgid(0) != 0 || raw_setgroups({}) != 0) std::abort();
}

}  // namespace

std::expected<ScopedCredentials, int> ScopedCredentials::switch_to(uid_t uid, gid_t gid,
                                                                   std::span<const gid_t> groups) {
    if (uid == static_cast<uid_t>(-1) || gid == static_cast<gid_t>(-1)) {
        return std::unexpected(EINVAL);
    }
    // Only root may become someone else; an unprivileged server creates files as itself.
    if (::geteuid() != 0) return ScopedCredentials(false);
    if (uid == 0 && gid == 0 && groups.empty()) return ScopedCredentials(false);
    // Groups and gid first: once the euid is not 0 the thread may no longer change them.
    if (raw_setgroups(groups) != 0) return std::unexpected(errno);
    if (raw_setresgid(gid) != 0) {
        int err = errno;
        restore_root();
        return std::unexpected(err);
    }
    if (raw_setresuid(uid) != 0) {
        int err = errno;
        restore_root();
        return std::unexpected(err);
    }
    return ScopedCredentials(true);
}

ScopedCredentials::ScopedCredentials(ScopedCredentials&& other) noexcept
    : active_(std::exchange(other.active_, false)) {}

ScopedCredentials::~ScopedCredentials() {
    if (active_) restore_root();
}

}  // namespace vfsdax::fs::passthrough
