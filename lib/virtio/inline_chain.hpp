// fill_inline_chain(): both queue layouts' fast path, a short direct chain built in registers.
#pragma once

#include <cstdint>

#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/descriptor_chain.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::virtio {

// One descriptor as the fast path uses it: each field loaded from the ring once, so every
// check and every use sees the same value (no double fetch).
struct InlineDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
};

// Fills `chain` with the list that starts at `desc`: `next(desc)` replaces desc by its NEXT
// successor (false: declined). Takes only the common case: at most `limit` descriptors
// (limit <= kInlineSegments), flags NEXT and WRITE alone (ring state bits cleared by the
// caller; INDIRECT and reserved bits decline), readable ones before writable ones, every
// buffer non-empty and in `cache`'s region (current: the caller checked), at most 2^32 - 1
// bytes in all. false, with `chain` in no particular state, for anything else (every
// malformed list included): the caller's slow path then decides. No queue state changes.
//
// Two loops, readable descriptors then writable ones: each accumulates one byte count, the
// readable count is where the first one stopped, and a descriptor's flags take one compare
// there (two for the last one), ordering check included.
template <typename Next>
[[gnu::always_inline]] inline bool fill_inline_chain(DescriptorChain& chain, uint32_t limit,
                                                     const GuestMemory::RegionCache& cache,
                                                     InlineDesc desc, Next&& next) {
    constexpr uint16_t kNext = VRING_DESC_F_NEXT;
    constexpr uint16_t kWrite = VRING_DESC_F_WRITE;
    Segment* const first = chain.inline_segments();
    // Also the loop bound: the caller's limit keeps a list that revisits a descriptor out.
    Segment* const end = first + limit;
    Segment* seg = first;
    const auto take = [&](const InlineDesc& d) {
        if (!cache.holds_nonempty(d.addr, d.len) || seg == end) return false;
        *seg++ = Segment(cache.host + (d.addr - cache.base), d.len);
        return true;
    };
    const auto finish = [&](const Segment* writable, uint64_t readable_bytes,
                            uint64_t writable_bytes) {
        // At most kInlineSegments 32-bit lengths: no 64-bit overflow.
        if ((readable_bytes + writable_bytes) >> 32) return false;
        chain.assign_inline(static_cast<uint16_t>(seg - first), writable - first, readable_bytes,
                            writable_bytes);
        return true;
    };

    uint64_t readable_bytes = 0;
    while (desc.flags == kNext) {
        if (!take(desc)) return false;
        readable_bytes += desc.len;
        if (!next(desc)) return false;
    }
    if (desc.flags == 0) {  // the last descriptor, readable
        if (!take(desc)) return false;
        return finish(seg, readable_bytes + desc.len, 0);
    }
    const Segment* const writable = seg;
    uint64_t writable_bytes = 0;
    for (;;) {
        // Only writable descriptors from here: a readable one after a writable one, like
        // INDIRECT or a reserved bit, is the slow path's to refuse.
        if ((desc.flags | kNext) != (kWrite | kNext) || !take(desc)) return false;
        writable_bytes += desc.len;
        if (desc.flags == kWrite) return finish(writable, readable_bytes, writable_bytes);
        if (!next(desc)) return false;
    }
}

}  // namespace vfsdax::virtio
