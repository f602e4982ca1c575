// SPDX-License-Identifier: Apache-2.0
// Per-thread credential switching with raw setresuid/setresgid/setgroups syscalls.
#include "passthrough/credentials.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
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

thread_local bool g_lost = false;

// Back to root. A failure leaves this thread acting as some guest user: it is marked lost, and
// the thread's owner ends it rather than let it serve another requester.
void restore_root() {
    if (raw_setresuid(0) != 0 || raw_setresgid(0) != 0 || raw_setgroups({}) != 0) g_lost = true;
}

}  // namespace

bool ScopedCredentials::lost() {
    return g_lost;
}

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
