// SPDX-License-Identifier: Apache-2.0
// SharedMemoryRegion: a host address range reserved once, into which file extents are mapped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>

#include "vfsdax/export.hpp"

namespace vfsdax {

// The host side of a device's shared memory window (virtio-fs DAX). The whole range is reserved
// at creation and stays reserved for the object's life, so a VMM can register it once as one
// memory slot and GuestMemory can translate into it:
// - map() puts a file extent in place (MAP_SHARED|MAP_FIXED); the mapping holds the file, so
//   the fd may be closed afterwards.
// - discard() puts fresh anonymous memory back: the range reads as zeros, holds nothing of the
//   file, and stays reserved (it is never munmapped, so no other mmap can land in it).
// Unmapped ranges are readable and writable anonymous memory rather than PROT_NONE: a guest or
// a device buffer that touches them must see zeros, not kill the VMM.
//
// Offsets and lengths are checked (page-aligned, inside the region, overflow-safe); errors are
// positive errno values. Not synchronised: the caller serialises operations on one range.
class VFSDAX_EXPORT SharedMemoryRegion {
public:
    // `size` must be a nonzero multiple of the page size. The start is 2 MiB aligned, so the
    // kernel and KVM can back the window with huge pages where the file allows.
    static std::expected<SharedMemoryRegion, int> reserve(uint64_t size);

    SharedMemoryRegion(SharedMemoryRegion&& other) noexcept;
    SharedMemoryRegion& operator=(SharedMemoryRegion&& other) noexcept;
    SharedMemoryRegion(const SharedMemoryRegion&) = delete;
    SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;
    ~SharedMemoryRegion();

    std::byte* host() const { return host_; }
    uint64_t size() const { return size_; }
    // The host page size, read once at reserve(): the calls below need no libc lookup, so
    // discard() may run in a signal handler (it is then one mmap system call).
    uint64_t page_size() const { return page_; }

    // Maps [file_offset, file_offset + length) of `fd` at [offset, offset + length), read-only
    // or read-write. `fd` must be open for reading, and for writing too if `writable`.
    std::expected<void, int> map(uint64_t offset, uint64_t length, int fd, uint64_t file_offset,
                                 bool writable);
    // Replaces [offset, offset + length) with fresh zero-filled anonymous memory.
    std::expected<void, int> discard(uint64_t offset, uint64_t length);
    // Writes back to their files the pages of [offset, offset + length) dirtied through the
    // region, and waits for it (msync MS_SYNC).
    std::expected<void, int> sync(uint64_t offset, uint64_t length);

private:
    SharedMemoryRegion(std::byte* host, uint64_t size, uint64_t page)
        : host_(host), size_(size), page_(page) {}
    VFSDAX_LOCAL std::expected<void, int> check(uint64_t offset, uint64_t length) const;

    std::byte* host_ = nullptr;
    uint64_t size_ = 0;
    uint64_t page_ = 0;
};

}  // namespace vfsdax
