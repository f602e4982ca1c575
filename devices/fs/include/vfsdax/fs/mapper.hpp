// SPDX-License-Identifier: Apache-2.0
// Mapper: how the FUSE server reaches the DAX window without knowing where it lives.
#pragma once

#include <cstdint>
#include <expected>
#include <span>

#include "vfsdax/export.hpp"

namespace vfsdax::fs {

// One piece of host file backing a window range. The fd is borrowed for the call only:
// the mapping itself keeps the file alive.
struct FileExtent {
    int fd = -1;
    uint64_t offset = 0;
    uint64_t length = 0;
};

// Errors are positive errno values, ready for a FUSE error reply.
class VFSDAX_EXPORT Mapper {
public:
    virtual ~Mapper() = default;

    virtual uint64_t window_size() const = 0;
    // log2 of the granularity window offsets, file offsets and lengths must keep: FUSE_INIT's
    // map_alignment (the Linux guest accepts up to 21, its 2 MiB ranges).
    virtual uint32_t map_alignment() const = 0;

    // FUSE_SETUPMAPPING: maps `extents` back to back at [window_offset, window_offset + sum).
    // `owner` is the file's nodeid, so its mappings can be found again (sync).
    virtual std::expected<void, int> map(uint64_t window_offset,
                                         std::span<const FileExtent> extents, bool writable,
                                         uint64_t owner) = 0;
    // The file system changed the size of `owner`'s file for the guest (SETATTR, WRITE,
    // FALLOCATE, COPY_FILE_RANGE), and the guest has not been answered yet. A window range of
    // `owner` that the mapper had to take off its file while it lay past the file's end must
    // map the file again wherever the file now covers it, before the guest can store there:
    // the guest was told the range maps the file, and its stores must reach the file.
    virtual std::expected<void, int> follow_file_size(uint64_t owner) = 0;
    // FUSE_REMOVEMAPPING, one entry.
    virtual std::expected<void, int> unmap(uint64_t window_offset, uint64_t length) = 0;
    // FSYNC and friends: write back what the guest dirtied through the window for `owner`.
    virtual std::expected<void, int> sync(uint64_t owner) = 0;
    // FUSE_SYNCFS: the same for every owner. Every mapping is tried even after one fails.
    virtual std::expected<void, int> sync_all() = 0;
    // The session ended (device reset, FUSE_DESTROY): every mapping goes and the whole window
    // reads as zeros, so the next session starts from an empty window.
    virtual std::expected<void, int> reset() = 0;
};

}  // namespace vfsdax::fs
