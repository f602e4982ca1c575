// SPDX-License-Identifier: Apache-2.0
// Per-thread umask through unshare(CLONE_FS).
#include "passthrough/thread_umask.hpp"

#include <sched.h>
#include <sys/stat.h>

#include <cerrno>

namespace vfsdax::fs::passthrough {

std::expected<void, int> set_thread_umask(mode_t mask) {
    thread_local bool unshared = false;
    if (!unshared) {
        if (::unshare(CLONE_FS) != 0) return std::unexpected(errno);
        unshared = true;
    }
    ::umask(mask & 0777);
    return {};
}

}  // namespace vfsdax::fs::passthrough
