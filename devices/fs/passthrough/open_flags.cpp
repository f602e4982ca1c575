// SPDX-License-Identifier: Apache-2.0
// Whitelist of guest open flags.
#include "passthrough/open_flags.hpp"

#include <fcntl.h>

#include <cerrno>

namespace vfsdax::fs::passthrough {

std::expected<int, int> sanitize_open_flags(uint32_t guest_flags, bool writeback_cache) {
    const int in = static_cast<int>(guest_flags);
    constexpr int kKept =
        O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_SYNC | O_DSYNC | O_NOATIME | O_LARGEFILE;
    int flags = in & kKept;
    if ((flags & O_ACCMODE) == O_ACCMODE) return std::unexpected(EINVAL);
    if (writeback_cache) {
        if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
        flags &= ~O_APPEND;
    }
    return flags;
}

}  // namespace vfsdax::fs::passthrough
