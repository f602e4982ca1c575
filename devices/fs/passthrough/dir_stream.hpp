// SPDX-License-Identifier: Apache-2.0
// DirStream: one open host directory listed at the guest's offsets without losing entries.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "vfsdax/fs/file_system.hpp"

namespace vfsdax::fs::passthrough {

// Many host file systems give a directory entry's d_off as its position in the listing
// (ramfs, tmpfs before Linux 6.6, overlayfs's merged directories): seeking to it after the
// guest removed entries before it lands that many entries too far, and `rm -rf`, which lists
// a batch, unlinks it and lists on, then misses live entries and fails on "directory not
// empty". Reading on from the fd's own position (its cursor) misses nothing. So a stream keeps
// the entries it read from the host past the ones the guest was given, with those of its last
// reply, and serves a request at any of their offsets from them; only another offset (a guest
// seekdir, a rewind to 0) seeks the host fd. Not thread-safe: the caller serializes.
class DirStream {
public:
    struct Entry {
        uint64_t ino = 0;
        uint64_t next_offset = 0;  // the host's d_off: where the listing resumes after this one
        uint8_t type = 0;
        std::string name;
    };

    // Positions the stream at the entry after `offset` (0: the start), seeking `fd` only when
    // the held entries do not reach it.
    Result<void> seek(int fd, uint64_t offset);
    // The next entry, without taking it; null at the end of the directory. An error from the
    // host only when nothing is held.
    Result<const Entry*> peek(int fd);
    // Takes the entry peek() returned.
    void advance() { ++next_; }

private:
    Result<void> fill(int fd);

    std::deque<Entry> held_;     // from the first entry of the last reply on
    std::size_t next_ = 0;       // the next entry to hand out, in held_
    uint64_t start_offset_ = 0;  // the offset before held_.front()
    bool positioned_ = false;    // held_ and the fd's position belong to start_offset_
};

}  // namespace vfsdax::fs::passthrough
