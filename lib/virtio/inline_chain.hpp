// SPDX-License-Identifier: Apache-2.0
// fill_inline_chain(): both queue layouts' fast path, a short direct chain built in place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/descriptor_chain.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::virtio {

// A descriptor's buffer, as the fast path reads it: each field loaded from the ring once, so
// every check and every use sees the same value (no double fetch).
struct InlineBuffer {
    uint64_t addr;
    uint32_t len;
};

namespace inline_chain {

// The walk, unrolled: one copy of the code per segment position K and phase (readable or
// writable), so each segment goes to a fixed offset in the chain, the segment count is a
// constant where the chain ends, and nothing counts positions at run time. The chain's few
// fields are stored where they become known (readable ones at the first writable descriptor),
// not carried in registers to the end. Flags are loaded first and decide the path; a buffer's
// address and length only where it is taken. Every value travels as a plain parameter: an
// object holding them would end up in memory, not in registers.

constexpr uint16_t kNext = VRING_DESC_F_NEXT;
constexpr uint16_t kWrite = VRING_DESC_F_WRITE;

// Segment K from the cursor's descriptor: a non-empty buffer in the cached region. `len` is
// its length.
template <std::size_t K, typename Cursor>
[[gnu::always_inline]] inline bool take(DescriptorChain& chain,
                                        const GuestMemory::RegionCache& cache, const Cursor& cursor,
                                        uint32_t& len) {
    const InlineBuffer b = cursor.buffer();
    if (!cache.holds_nonempty(b.addr, b.len)) return false;
    chain.inline_segments()[K] = Segment(cache.host + (b.addr - cache.base), b.len);
    len = b.len;
    return true;
}

template <std::size_t Count, typename Cursor>
[[gnu::always_inline]] inline bool finish(DescriptorChain& chain, const Cursor& cursor,
                                          uint64_t readable_bytes, uint64_t writable_bytes) {
    // One 32-bit length cannot exceed 2^32 - 1; a few cannot overflow 64 bits.
    if (Count > 1 && ((readable_bytes + writable_bytes) >> 32) != 0) return false;
    chain.finish_inline(Count, writable_bytes);
    cursor.end(chain, Count);
    return true;
}

// Position K, a writable descriptor with NEXT (`last` false) or without. Only writable
// descriptors from here: a readable one after a writable one, like INDIRECT or a reserved
// bit, is the slow path's to refuse.
template <std::size_t K, typename Cursor>
[[gnu::always_inline]] inline bool writable(DescriptorChain& chain,
                                            const GuestMemory::RegionCache& cache, Cursor cursor,
                                            bool last, uint64_t readable_bytes,
                                            uint64_t writable_bytes) {
    if constexpr (K == DescriptorChain::kInlineSegments) {
        return false;
    } else {
        uint32_t len;
        if (!take<K>(chain, cache, cursor, len)) return false;
        writable_bytes += len;
        if (last) return finish<K + 1>(chain, cursor, readable_bytes, writable_bytes);
        uint16_t flags;
        if (!cursor.next(flags)) return false;
        if (flags == kWrite)
            return writable<K + 1>(chain, cache, cursor, true, readable_bytes, writable_bytes);
        if (flags == (kWrite | kNext))
            return writable<K + 1>(chain, cache, cursor, false, readable_bytes, writable_bytes);
        return false;
    }
}

// Position K, every descriptor so far readable, summing `readable_bytes`.
template <std::size_t K, typename Cursor>
[[gnu::always_inline]] inline bool readable(DescriptorChain& chain,
                                            const GuestMemory::RegionCache& cache, Cursor cursor,
                                            uint16_t flags, uint64_t readable_bytes) {
    if constexpr (K == DescriptorChain::kInlineSegments) {
        return false;
    } else {
        uint32_t len;
        if (flags == kNext) {
            if (!take<K>(chain, cache, cursor, len)) return false;
            uint16_t next_flags;
            return cursor.next(next_flags) &&
                   readable<K + 1>(chain, cache, cursor, next_flags, readable_bytes + len);
        }
        // Most requests end with a writable part: its first descriptor is tested next.
        if (flags == kWrite || flags == (kWrite | kNext)) {
            chain.set_inline_readable(K, readable_bytes);
            return writable<K>(chain, cache, cursor, flags == kWrite, readable_bytes, 0);
        }
        if (flags == 0) {  // the last descriptor, readable
            if (!take<K>(chain, cache, cursor, len)) return false;
            readable_bytes += len;
            chain.set_inline_readable(K + 1, readable_bytes);
            return finish<K + 1>(chain, cursor, readable_bytes, 0);
        }
        // INDIRECT or a reserved bit: the slow path's to decide.
        return false;
    }
}

}  // namespace inline_chain

// Fills `chain` with the list whose first descriptor is the cursor's, with `flags`: the cursor
// gives its descriptor's buffer(), moves to the NEXT successor with next(flags) (false:
// declined), and end(chain, slots) sets the chain's token from the list's last descriptor and
// the ring slots the list takes (one per descriptor). Flags come with the ring's state bits
// cleared. Takes only the common case: at most kInlineSegments descriptors, flags NEXT and WRITE
// alone (INDIRECT and reserved bits decline), readable ones before writable ones, every buffer
// non-empty and in `cache`'s region (current: the caller checked), at most 2^32 - 1 bytes in all.
// false, with `chain` in no particular state, for anything else (every malformed list included):
// the caller's slow path then decides. No queue state changes.
//
// The caller keeps a queue smaller than kInlineSegments off this path (its cache stays empty,
// so the first descriptor declines): a list that long would revisit a slot or a descriptor.
template <typename Cursor>
[[gnu::always_inline]] inline bool fill_inline_chain(DescriptorChain& chain,
                                                     const GuestMemory::RegionCache& cache,
                                                     Cursor cursor, uint16_t flags) {
    return inline_chain::readable<0>(chain, cache, cursor, flags, 0);
}

}  // namespace vfsdax::virtio
