// SPDX-License-Identifier: Apache-2.0
// GuestMemory: region setup and placement; translation is inline in the header.
#include "vfsdax/memory/guest_memory.hpp"

namespace vfsdax {

const char* to_string(MemoryError error) {
    switch (error) {
        case MemoryError::OutOfRange:
            return "guest address range not backed by memory";
        case MemoryError::Overflow:
            return "guest address range wraps the address space";
        case MemoryError::Misaligned:
            return "misaligned guest address";
        case MemoryError::Overlap:
            return "guest memory regions overlap";
        case MemoryError::BadRegion:
            return "bad guest memory region";
    }
    return "unknown memory error";
}

std::expected<std::span<std::byte>, MemoryError> GuestMemory::translate_and_cache(
    GuestAddress addr, uint64_t len, RegionCache& cache) const {
    // Loaded before the table: the bases found are at least as new as this tag (see the header).
    const uint64_t generation = generation_.load(std::memory_order_acquire);
    uint64_t last;
    if (__builtin_add_overflow(addr.raw(), len, &last))
        return std::unexpected(MemoryError::Overflow);
    const Found f = find(addr.raw(), len);
    if (!f.region) return std::unexpected(MemoryError::OutOfRange);
    cache = {f.base, f.region->size, f.region->host, generation};
    return std::span<std::byte>(f.region->host + (addr.raw() - f.base), len);
}

std::expected<GuestMemory::RegionId, MemoryError> GuestMemory::add_region(GuestAddress base,
                                                                          uint64_t size,
                                                                          void* host) {
    return insert(base.raw(), size, host);
}

std::expected<GuestMemory::RegionId, MemoryError> GuestMemory::add_unplaced_region(uint64_t size,
                                                                                   void* host) {
    return insert(kUnplaced, size, host);
}

std::expected<GuestMemory::RegionId, MemoryError> GuestMemory::insert(uint64_t base, uint64_t size,
                                                                      void* host) {
    std::lock_guard lock(placement_mutex_);
    if (size == 0 || host == nullptr || count_ == kMaxRegions) {
        return std::unexpected(MemoryError::BadRegion);
    }
    if (base != kUnplaced) {
        uint64_t end;
        if (__builtin_add_overflow(base, size, &end)) return std::unexpected(MemoryError::Overflow);
        if (overlaps_placed(count_, base, size)) return std::unexpected(MemoryError::Overlap);
    }
    Region& r = regions_[count_];
    r.size = size;
    r.host = static_cast<std::byte*>(host);
    r.base.store(base, std::memory_order_release);
    return count_++;
}

std::expected<void, MemoryError> GuestMemory::place_region(RegionId id, GuestAddress base) {
    std::lock_guard lock(placement_mutex_);
    if (id >= count_) return std::unexpected(MemoryError::BadRegion);
    uint64_t end;
    if (__builtin_add_overflow(base.raw(), regions_[id].size, &end)) {
        return std::unexpected(MemoryError::Overflow);
    }
    if (overlaps_placed(id, base.raw(), regions_[id].size))
        return std::unexpected(MemoryError::Overlap);
    regions_[id].base.store(base.raw(), std::memory_order_release);
    // After the base: a cache tagged with the new generation holds the new base.
    generation_.fetch_add(1, std::memory_order_release);
    return {};
}

std::expected<void, MemoryError> GuestMemory::unplace_region(RegionId id) {
    std::lock_guard lock(placement_mutex_);
    if (id >= count_) return std::unexpected(MemoryError::BadRegion);
    regions_[id].base.store(kUnplaced, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    return {};
}

bool GuestMemory::overlaps_placed(RegionId except, uint64_t base, uint64_t size) const {
    for (RegionId i = 0; i < count_; ++i) {
        const uint64_t other = regions_[i].base.load(std::memory_order_relaxed);
        if (i == except || other == kUnplaced) continue;
        if (base < other + regions_[i].size && other < base + size) return true;
    }
    return false;
}

}  // namespace vfsdax
