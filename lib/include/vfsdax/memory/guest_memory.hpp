// SPDX-License-Identifier: Apache-2.0
// GuestMemory: the checked map from guest-physical ranges to host memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <mutex>
#include <span>
#include <type_traits>

#include "vfsdax/export.hpp"
#include "vfsdax/memory/guest_address.hpp"

namespace vfsdax {

enum class MemoryError {
    OutOfRange,  // no region holds the start of the range, or the range runs past its region
    Overflow,    // address + length wraps the 64-bit space
    Misaligned,  // an object access at an address not aligned for its type
    Overlap,     // a new or moved region would overlap an existing one
    BadRegion,   // unknown region id, zero size, null host pointer, or table full
};

VFSDAX_EXPORT const char* to_string(MemoryError error);

// A set of non-overlapping regions, each a guest-physical range backed by host memory.
//
// Translation is all-or-nothing: a range is returned as one host span only when it lies wholly
// inside one region. A range that crosses from one region into another is rejected, by design:
// the VMM registers physically contiguous RAM as a single region, so crossing only happens at a
// boundary between unrelated memories (RAM and a BAR), which no well-formed buffer spans.
//
// Threading: add_region() is for setup, before any device is activated. place_region() may run
// at any time (a guest moving a BAR) concurrently with translate(): a region's host memory never
// changes, only where it sits in guest-physical space, so a racing translation returns either
// the old or the new placement, both of them valid host memory.
class VFSDAX_EXPORT GuestMemory {
public:
    using RegionId = std::size_t;

    GuestMemory() = default;
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    // A region placed at `base`. Host memory must outlive this object.
    std::expected<RegionId, MemoryError> add_region(GuestAddress base, uint64_t size, void* host);
    // A region that is not visible to the guest until placed (a BAR before the guest sizes it).
    std::expected<RegionId, MemoryError> add_unplaced_region(uint64_t size, void* host);
    // Moves a region to `base`; rejected if it would overlap another placed region.
    std::expected<void, MemoryError> place_region(RegionId id, GuestAddress base);
    // Hides a region from translation (memory decoding off, BAR being moved).
    std::expected<void, MemoryError> unplace_region(RegionId id);

    // Host memory for [addr, addr + len). len == 0 yields an empty span at a valid address.
    std::expected<std::span<std::byte>, MemoryError> translate(GuestAddress addr,
                                                               uint64_t len) const {
        uint64_t last;
        if (__builtin_add_overflow(addr.raw(), len, &last))
            return std::unexpected(MemoryError::Overflow);
        const Found f = find(addr.raw(), len);
        if (!f.region) return std::unexpected(MemoryError::OutOfRange);
        return std::span<std::byte>(f.region->host + (addr.raw() - f.base), len);
    }

    // The region a hot path last translated into, for translate(addr, len, cache). Owned by one
    // thread (a queue); starts empty.
    struct RegionCache {
        uint64_t base = 0;
        uint64_t size = 0;  // 0: empty, matches nothing
        std::byte* host = nullptr;
        uint64_t generation = 0;

        // Whether the non-empty range [a, a + len) lies in this region (its host memory is then
        // host + (a - base)); meaningful only while is_current(). One add and one compare:
        // the offset of the range's last byte must not carry and must fall below size. That
        // covers every case, as a placed region ends below 2^64 (base + size does not wrap):
        // a < base makes (a - base) at least 2^64 - base > size; len == 0 makes len - 1 = 2^64
        // - 1, which carries for any offset but 0 and is >= size for 0.
        [[gnu::always_inline]] bool holds_nonempty(uint64_t a, uint64_t len) const {
            uint64_t last_offset;
            return !__builtin_add_overflow(a - base, len - 1, &last_offset) && last_offset < size;
        }
    };

    // Whether `cache` still describes its region's placement.
    //
    // Why a cached placement is safe to use: a region's size and host memory never change once
    // added, and every place/unplace bumps generation_ after storing the new base. A cache is
    // tagged with the generation loaded (acquire) before the table lookup that filled it, so its
    // base is at least as new as its tag. A current cache means no region has moved since, or
    // the move has not reached this thread yet: a translation racing the move, which may return
    // the old placement, as translate() may. A move that happens-before the check (the VMM moves
    // a BAR, then wakes the device thread) changes the generation, and the table decides.
    // Adding a region moves nothing, and only hits are cached, so add_region() need not bump.
    bool is_current(const RegionCache& cache) const {
        return generation_.load(std::memory_order_acquire) == cache.generation;
    }

    // translate(), checking the cached region before the table (and refilling the cache from
    // it); same results, same errors.
    std::expected<std::span<std::byte>, MemoryError> translate(GuestAddress addr, uint64_t len,
                                                               RegionCache& cache) const {
        const uint64_t offset = addr.raw() - cache.base;
        if (offset < cache.size && len <= cache.size - offset && is_current(cache)) [[likely]] {
            return std::span<std::byte>(cache.host + offset, len);
        }
        return translate_and_cache(addr, len, cache);
    }

    // A typed pointer to a naturally aligned object in guest memory.
    template <typename T>
    std::expected<T*, MemoryError> object(GuestAddress addr) const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (!addr.is_aligned(alignof(T))) return std::unexpected(MemoryError::Misaligned);
        auto span = translate(addr, sizeof(T));
        if (!span) return std::unexpected(span.error());
        return reinterpret_cast<T*>(span->data());
    }

    // Copies out an object; the guest may change memory at any time, so callers that must
    // check a value and then use it read it once, through this.
    template <typename T>
    std::expected<T, MemoryError> read(GuestAddress addr) const {
        static_assert(std::is_trivially_copyable_v<T>);
        auto span = translate(addr, sizeof(T));
        if (!span) return std::unexpected(span.error());
        T value;
        std::memcpy(&value, span->data(), sizeof(T));
        return value;
    }

    template <typename T>
    std::expected<void, MemoryError> write(GuestAddress addr, const T& value) const {
        static_assert(std::is_trivially_copyable_v<T>);
        auto span = translate(addr, sizeof(T));
        if (!span) return std::unexpected(span.error());
        std::memcpy(span->data(), &value, sizeof(T));
        return {};
    }

private:
    // No placed region can start here: placement rejects ranges that wrap the address space.
    static constexpr uint64_t kUnplaced = ~uint64_t{0};

public:
    // RAM, a few BARs' windows: a fixed table keeps translate() free of locks and indirection.
    static constexpr std::size_t kMaxRegions = 32;

private:
    struct Region {
        std::atomic<uint64_t> base{kUnplaced};
        uint64_t size = 0;
        std::byte* host = nullptr;
    };

    // The placed region holding all of [a, a + len), which must not wrap (region nullptr if
    // none), and its base as loaded once: a concurrent move must not mix two placements.
    struct Found {
        const Region* region;
        uint64_t base;
    };
    Found find(uint64_t a, uint64_t len) const {
        for (std::size_t i = 0; i < count_; ++i) {
            const Region& r = regions_[i];
            const uint64_t base = r.base.load(std::memory_order_acquire);
            // (a - base) underflows to a huge value when a < base, so one compare covers both.
            const uint64_t offset = a - base;
            if (offset < r.size && len <= r.size - offset && base != kUnplaced) return {&r, base};
        }
        return {nullptr, 0};
    }
    std::expected<std::span<std::byte>, MemoryError> translate_and_cache(GuestAddress addr,
                                                                         uint64_t len,
                                                                         RegionCache& cache) const;
    VFSDAX_LOCAL std::expected<RegionId, MemoryError> insert(uint64_t base, uint64_t size,
                                                             void* host);
    VFSDAX_LOCAL bool overlaps_placed(RegionId except, uint64_t base, uint64_t size) const;

    Region regions_[kMaxRegions];
    std::size_t count_ = 0;  // written only during setup, before translate() runs elsewhere
    // Bumped by every placement change, after the new base is stored: invalidates RegionCaches.
    std::atomic<uint64_t> generation_{0};
    std::mutex placement_mutex_;
};

}  // namespace vfsdax
