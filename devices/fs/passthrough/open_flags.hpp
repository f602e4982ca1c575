// SPDX-License-Identifier: Apache-2.0
// The open(2) flags the guest may pass through to the host.
#pragma once

#include <cstdint>
#include <expected>

namespace vfsdax::fs::passthrough {

// Keeps only access mode, O_APPEND, O_TRUNC, O_NONBLOCK, O_SYNC/O_DSYNC, O_NOATIME and
// O_LARGEFILE: anything that creates (O_CREAT, O_EXCL, O_TMPFILE), changes what is opened
// (O_PATH, O_NOFOLLOW, O_DIRECTORY, O_NOCTTY) or needs aligned buffers (O_DIRECT) is the
// backend's to decide. With the writeback cache the guest reads through write-only handles
// and does appends itself, so O_WRONLY becomes O_RDWR and O_APPEND goes. EINVAL for an access
// mode of 3.
std::expected<int, int> sanitize_open_flags(uint32_t guest_flags, bool writeback_cache);

}  // namespace vfsdax::fs::passthrough
