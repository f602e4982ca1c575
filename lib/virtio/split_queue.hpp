// SPDX-License-Identifier: Apache-2.0
// SplitQueue: the device side of a split virtqueue (virtio 1.2, 2.7). Private to libvfsdax;
// devices reach it through Queue and activate_queue().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index_table.hpp"
#include "vfsdax/virtio/queue.hpp"

namespace vfsdax::virtio {

// The three rings are translated once, at activation: a RAM region's host memory never moves,
// so the host pointers stay valid for the queue's life (the guest memory outlives the queue).
// Every access to guest-shared ring memory goes through __atomic builtins (relaxed unless an
// ordering is needed); descriptors are copied out once per visit into registers.
//
// Not exported (the library's default visibility is hidden): nothing outside libvfsdax names
// it, and hidden members are called directly (no PLT, no interposition), which lets the
// compiler inline the hot path into pop().
class SplitQueue final : public Queue {
public:
    struct Rings {
        std::byte* desc;   // size * 16 bytes
        std::byte* avail;  // 6 + 2 * size bytes: flags, idx, ring[size], used_event
        std::byte* used;   // 6 + 8 * size bytes: flags, idx, ring[size] {id, len}, avail_event
    };

    SplitQueue(const GuestMemory& memory, uint16_t size, Rings rings, uint64_t features);

    std::expected<bool, QueueError> pop(DescriptorChain& chain) override;
    std::expected<void, QueueError> push(const DescriptorChain& chain, uint32_t written) override;
    bool needs_interrupt() override;
    std::expected<bool, QueueError> push_and_needs_interrupt(const DescriptorChain& chain,
                                                             uint32_t written) override;
    void disable_notifications() override;
    std::expected<bool, QueueError> enable_notifications() override;
    uint16_t size() const override { return size_; }
    bool broken() const override { return broken_; }
    std::string describe() const override;

private:
    struct Desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    };

    // Every error path: the queue stays broken. avail_idx_ is pinned to last_avail_idx_ and
    // avail_window_ to -1, so pop() refuses by its avail index check; nothing stays in flight,
    // so push() refuses every chain by its in-flight check alone.
    [[gnu::cold, gnu::noinline]] std::unexpected<QueueError> fail(QueueError error);
    // Reads avail->idx (acquire) into avail_idx_ after checking it against `last`
    // (last_avail_idx_); false, changing nothing, for an index beyond the window.
    bool refresh_avail_idx(uint16_t last);
    // The common chain, in registers (fill_inline_chain()); false for anything else
    // (including every malformed chain), which walk() then decides. No queue state changes.
    bool walk_fast(uint16_t head, DescriptorChain& chain);
    // pop() for a chain walk_fast() declined (its head taken, in its token): walk(). A tail
    // call from pop(), so pop() itself keeps nothing live across a call.
    [[gnu::noinline]] std::expected<bool, QueueError> pop_slow(DescriptorChain& chain);
    // refresh_avail_idx() for an index beyond the window: Broken, or the driver's mistake.
    // Returns what pop() does, so that pop() reaches it by a tail call.
    [[gnu::noinline, gnu::cold]] std::expected<bool, QueueError> refuse_avail_idx();
    // pop() for a head that is out of range or already in flight.
    [[gnu::noinline, gnu::cold]] std::expected<bool, QueueError> refuse_head(uint16_t head);
    // Places a popped chain in the used ring, `next_used` set to the new next_used_; false,
    // changing nothing, for a chain not in flight.
    bool push_used(const DescriptorChain& chain, uint32_t written, uint32_t& next_used);
    // push() for a chain not in flight: Broken on a broken queue, else the device's mistake.
    // As the caller's result, so that the caller reaches it by a tail call.
    template <typename Result>
    [[gnu::noinline, gnu::cold]] Result refuse_push();
    // needs_interrupt() once something was pushed since the last decision; `next` is
    // next_used_.
    bool decide_interrupt(uint32_t next);
    // The chain at avail entry `last` (== last_avail_idx_) is now the device's.
    void take_head(uint16_t last, uint16_t head);
    // A buffer's host memory, through region_cache_ for a queue of at least kInlineSegments
    // entries. A smaller queue's cache stays empty, which keeps walk_fast() off it: a chain
    // of up to kInlineSegments descriptors there may revisit one (a loop).
    std::expected<std::span<std::byte>, MemoryError> translate_buffer(uint64_t addr, uint32_t len);
    // Walks the chain starting at `head` into `chain`; no queue state changes.
    std::expected<void, QueueError> walk(uint16_t head, DescriptorChain& chain);
    // Cold: most chains are direct; kept out of pop()'s inlined body.
    [[gnu::noinline, gnu::cold]] std::expected<void, QueueError> walk_indirect(
        uint64_t addr, uint32_t len, DescriptorChain& chain);
    // One fetch of the 16-byte descriptor at `p` (see split_queue.cpp).
    static Desc read_desc(const std::byte* p);

    vring_desc* desc_table() const { return reinterpret_cast<vring_desc*>(rings_.desc); }
    uint16_t* avail_idx_ptr() const { return reinterpret_cast<uint16_t*>(rings_.avail + 2); }
    uint16_t* avail_ring() const { return reinterpret_cast<uint16_t*>(rings_.avail + 4); }
    uint16_t* used_flags_ptr() const { return reinterpret_cast<uint16_t*>(rings_.used); }
    uint16_t* used_idx_ptr() const { return reinterpret_cast<uint16_t*>(rings_.used + 2); }
    uint32_t* used_ring() const { return reinterpret_cast<uint32_t*>(rings_.used + 4); }

    const GuestMemory& memory_;
    // Where the last buffer was: the next is almost always in the same (RAM) region. Filled
    // by translate_buffer() only.
    GuestMemory::RegionCache region_cache_;
    Rings rings_;
    // After the rings, so they depend on size: precomputed, as the hot path uses them.
    uint16_t* const used_event_ptr_;
    uint16_t* const avail_event_ptr_;
    // Where pop() stores the new last_avail_idx_: avail_event while EVENT_IDX and notifications
    // are on (kick me when you add past what I have consumed), else kick_sink_. One store
    // instead of a test and a branch on the hot path.
    uint16_t* kick_target_;
    uint16_t kick_sink_ = 0;
    uint16_t size_;
    uint32_t mask_;  // size - 1, 32 bits: masking a 16-bit index needs no zero extension
    bool event_idx_;
    bool indirect_;
    bool broken_ = false;
    bool notifications_enabled_ = true;

    uint16_t last_avail_idx_ = 0;  // next avail ring entry to consume
    uint16_t avail_idx_ = 0;       // avail->idx as last read
    // Pushes ever, and as of the last interrupt decision; used->idx is the low 16 bits of
    // next_used_. 32 bits, so the decision sees more than 2^16 pushes since the last one.
    uint32_t next_used_ = 0;
    uint32_t signalled_used_ = 0;

    // pop() refuses any index above avail_window_ ahead of last_avail_idx_: size_, or -1 (all)
    // once broken, so pop() need not test broken_.
    int32_t avail_window_;

    // Per descriptor index, all 2^16 of them, so one load checks a head or a pushed id: beyond
    // the table, or popped and not yet pushed.
    enum : uint8_t { kNoSuchHead, kFree, kInFlight };
    IndexTable<uint8_t> in_flight_;
};

}  // namespace vfsdax::virtio
