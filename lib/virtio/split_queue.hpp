// SplitQueue: the device side of a split virtqueue (virtio 1.2, 2.7). Private to libvfsdax;
// devices reach it through Queue and activate_queue().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vfsdax/virtio/queue.hpp"

namespace vfsdax::virtio {

// The three rings are translated once, at activation: a RAM region's host memory never moves,
// so the host pointers stay valid for the queue's life (the guest memory outlives the queue).
// Every access to guest-shared ring memory goes through __atomic builtins (relaxed unless an
// ordering is needed); descriptors are copied out once per visit into registers.
//
// Hidden: nothing outside libvfsdax names it, and hidden members are called directly (no PLT,
// no interposition), which lets the compiler inline the hot path into pop().
class __attribute__((visibility("hidden"))) SplitQueue final : public Queue {
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
    void disable_notifications() override;
    std::expected<bool, QueueError> enable_notifications() override;
    uint16_t size() const override { return size_; }
    bool broken() const override { return broken_; }

private:
    struct Desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    };

    // Every error path: the queue stays broken. avail_idx_ is pinned to last_avail_idx_ so
    // pop() only ever reaches the broken_ check on its slow path.
    [[gnu::cold]] std::unexpected<QueueError> fail(QueueError error) {
        broken_ = true;
        avail_idx_ = last_avail_idx_;
        return std::unexpected(error);
    }
    // Reads avail->idx (acquire) and checks it against last_avail_idx_.
    std::expected<void, QueueError> refresh_avail_idx();
    // The common chain, in registers: direct descriptors, at most fast_limit_ of them, every
    // buffer in the cached region. false, with `chain` in no particular state, for anything
    // else (including every malformed chain): walk() then decides. No queue state changes.
    bool walk_fast(uint16_t head, DescriptorChain& chain);
    // Walks the chain starting at `head` into `chain`; no queue state changes. Every chain
    // walk_fast() declines, so out of pop()'s body.
    [[gnu::noinline]] std::expected<void, QueueError> walk(uint16_t head, DescriptorChain& chain);
    // Cold: most chains are direct; kept out of pop()'s inlined body.
    [[gnu::noinline, gnu::cold]] std::expected<void, QueueError> walk_indirect(
        uint64_t addr, uint32_t len, DescriptorChain& chain);
    // One fetch of the 16-byte descriptor at `p` (see split_queue.cpp).
    static Desc read_desc(const std::byte* p);

    uint16_t* avail_idx_ptr() const { return reinterpret_cast<uint16_t*>(rings_.avail + 2); }
    uint16_t* avail_ring() const { return reinterpret_cast<uint16_t*>(rings_.avail + 4); }
    uint16_t* used_flags_ptr() const { return reinterpret_cast<uint16_t*>(rings_.used); }
    uint16_t* used_idx_ptr() const { return reinterpret_cast<uint16_t*>(rings_.used + 2); }
    uint32_t* used_ring() const { return reinterpret_cast<uint32_t*>(rings_.used + 4); }

    const GuestMemory& memory_;
    // Where the last buffer was: the next is almost always in the same (RAM) region.
    GuestMemory::RegionCache region_cache_;
    Rings rings_;
    // After the rings, so they depend on size: precomputed, as the hot path uses them.
    uint16_t* const used_event_ptr_;
    uint16_t* const avail_event_ptr_;
    uint16_t size_;
    uint16_t mask_;
    uint16_t fast_limit_;  // min(size, kInlineSegments): walk_fast() declines longer chains
    bool event_idx_;
    bool indirect_;
    bool broken_ = false;
    bool notifications_enabled_ = true;
    bool follow_avail_event_;  // EVENT_IDX and notifications enabled: pop() moves avail_event

    uint16_t last_avail_idx_ = 0;  // next avail ring entry to consume
    uint16_t avail_idx_ = 0;       // avail->idx as last read
    uint16_t next_used_idx_ = 0;   // used->idx as last published
    uint32_t unsignalled_ = 0;     // pushes since the last interrupt decision

    std::vector<uint8_t> in_flight_;  // per head index: popped, not yet pushed
};

}  // namespace vfsdax::virtio
