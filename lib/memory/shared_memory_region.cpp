// SPDX-License-Identifier: Apache-2.0
// SharedMemoryRegion: the reserve / map-in-place / discard syscalls behind a DAX window.
#include "vfsdax/memory/shared_memory_region.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <utility>

namespace vfsdax {

namespace {

constexpr uint64_t kHugePage = uint64_t{2} << 20;
constexpr int kAnonymousFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

}  // namespace

std::expected<SharedMemoryRegion, int> SharedMemoryRegion::reserve(uint64_t size) {
    const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t padded;
    if (size == 0 || size % page != 0 || __builtin_add_overflow(size, kHugePage, &padded)) {
        return std::unexpected(EINVAL);
    }
    // mmap only promises page alignment: take 2 MiB more than needed and trim both ends.
    void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE, kAnonymousFlags, -1, 0);
    if (raw == MAP_FAILED) return std::unexpected(errno);
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t tail = start + padded - (aligned + size);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
    return SharedMemoryRegion(reinterpret_cast<std::byte*>(aligned), size, page);
}

SharedMemoryRegion::SharedMemoryRegion(SharedMemoryRegion&& other) noexcept
    : host_(std::exchange(other.host_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      page_(other.page_) {}

SharedMemoryRegion& SharedMemoryRegion::operator=(SharedMemoryRegion&& other) noexcept {
    if (this != &other) {
        if (host_ != nullptr) munmap(host_, size_);
        host_ = std::exchange(other.host_, nullptr);
        size_ = std::exchange(other.size_, 0);
        page_ = other.page_;
    }
    return *this;
}

SharedMemoryRegion::~SharedMemoryRegion() {
    if (host_ != nullptr) munmap(host_, size_);
}

std::expected<void, int> SharedMemoryRegion::check(uint64_t offset, uint64_t length) const {
    if (host_ == nullptr || length == 0 || offset % page_ != 0 || length % page_ != 0) {
        return std::unexpected(EINVAL);
    }
    if (offset > size_ || length > size_ - offset) return std::unexpected(EINVAL);
    return {};
}

std::expected<void, int> SharedMemoryRegion::map(uint64_t offset, uint64_t length, int fd,
                                                 uint64_t file_offset, bool writable) {
    if (auto ok = check(offset, length); !ok) return ok;
    // mmap takes a signed off_t: the whole file range must be representable.
    constexpr auto kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
    if (file_offset % page_ != 0 || file_offset > kMaxOffset || length > kMaxOffset - file_offset) {
        return std::unexpected(EINVAL);
    }
    const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    if (mmap(host_ + offset, length, prot, MAP_SHARED | MAP_FIXED, fd,
             static_cast<off_t>(file_offset)) == MAP_FAILED) {
        const int error = errno;
        // A failed MAP_FIXED may already have torn down what was there, leaving a hole any later
        // mmap could land in: fill it so the range stays reserved and reads as zeros.
        (void)discard(offset, length);
        return std::unexpected(error);
    }
    return {};
}

std::expected<void, int> SharedMemoryRegion::discard(uint64_t offset, uint64_t length) {
    if (auto ok = check(offset, length); !ok) return ok;
    if (mmap(host_ + offset, length, PROT_READ | PROT_WRITE, kAnonymousFlags | MAP_FIXED, -1, 0) ==
        MAP_FAILED) {
        return std::unexpected(errno);
    }
    return {};
}

std::expected<void, int> SharedMemoryRegion::sync(uint64_t offset, uint64_t length) {
    if (auto ok = check(offset, length); !ok) return ok;
    if (msync(host_ + offset, length, MS_SYNC) != 0) return std::unexpected(errno);
    return {};
}

}  // namespace vfsdax
