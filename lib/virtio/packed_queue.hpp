// SPDX-License-Identifier: Apache-2.0
// PackedQueue: the device side of a packed virtqueue (virtio 1.2, 2.8). Private.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <vector>

#include "index_table.hpp"
#include "vfsdax/virtio/queue.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::virtio {

// Not exported (the library's default visibility is hidden): nothing outside the library names
// it (it is reached through Queue), and a hidden member cannot be interposed, so the hot path
// inlines into pop().
class PackedQueue final : public Queue {
public:
    // Checks the packed layout rules (size <= 2^15, descriptor ring 16-aligned, event areas
    // 4-aligned, all backed by memory) and translates the three areas once.
    static std::expected<std::unique_ptr<Queue>, QueueError> create(const QueueConfig& config,
                                                                    const GuestMemory& memory,
                                                                    uint64_t features);

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

    // An indirect table may hold at most this many descriptors (as vhost does): a packed indirect
    // table is not bounded by the queue size (Linux puts more segments than that in one).
    static constexpr uint32_t kMaxIndirectDescriptors = 65536;

private:
    PackedQueue(const GuestMemory& memory, vring_packed_desc* ring, uint32_t* driver_event,
                uint32_t* device_event, uint16_t size, uint64_t features);

    bool available_at(uint16_t slot) const;
    // A descriptor list as read from the ring: the buffer id of its last descriptor, and the
    // ring slots it takes.
    struct List {
        uint16_t id;
        uint32_t slots;
    };
    // pop() for an available list starting at `first` with `flags`, within kInlineSegments of
    // the ring's end; a tail call, so pop() holds only the common walk, the one that takes no
    // wrap test per descriptor.
    [[gnu::noinline]] std::expected<bool, QueueError> pop_near_end(const vring_packed_desc* first,
                                                                   uint16_t flags,
                                                                   DescriptorChain& chain);
    // fill_inline_chain()'s view of the ring; `kMayWrap`: whether the list may reach its end.
    template <bool kMayWrap>
    struct RingCursor;
    // The common list, in registers (fill_inline_chain()). false, with `chain` in no particular
    // state, for anything else (including every malformed list): read_list() then decides. `flags`
    // are those of the first descriptor, at `first`. No queue state changes.
    template <bool kMayWrap>
    bool read_list_fast(const vring_packed_desc* first, uint16_t flags, DescriptorChain& chain,
                        List& list);
    // Reads any list into `chain`, or the guest's mistake; every list read_list_fast()
    // declines, so out of pop()'s body. No queue state changes.
    [[gnu::noinline]] std::expected<List, QueueError> read_list(uint32_t slot, uint16_t flags,
                                                                DescriptorChain& chain);
    // The rare path stays out of pop(); the common one goes into it.
    [[gnu::noinline]] std::expected<void, QueueError> read_indirect(DescriptorChain& chain,
                                                                    uint64_t addr, uint32_t len);
    // pop() for a list read_list_fast() declined, read again from the ring; a tail call
    // taking only the chain, so pop() keeps nothing live for it, across a call or the walk.
    [[gnu::noinline]] std::expected<bool, QueueError> pop_slow(DescriptorChain& chain);
    // pop()'s result when the descriptor at next_avail_ is not available.
    std::expected<bool, QueueError> unavailable() const;
    // Whether a list's buffer id is free: not in flight, and not beyond the ring (one load).
    bool id_free(uint16_t id) const;
    // Whether `slots` more ring slots can be in flight: a driver reuses slots only once they
    // are used, so more in flight than the ring holds means it overran us.
    bool fits(uint32_t slots) const;
    // The list at next_avail_ becomes the device's (id_free() and fits() hold). The popped
    // chain's token holds the list's id and ring slots already.
    void take_list(List list);
    // pop() of the list at `first` (available, with `flags`) when read_list_fast() takes it
    // and its id is free and its slots fit; false, with no queue state changed, for anything
    // else, which pop_slow() then reads again and decides.
    template <bool kMayWrap>
    bool pop_fast(const vring_packed_desc* first, uint16_t flags, DescriptorChain& chain);
    // Places a popped chain's used element and says in `slots` the ring slots it frees (the
    // caller adds them to used_since_signal_); false, changing nothing, for a chain not in
    // flight.
    bool push_used(const DescriptorChain& chain, uint32_t written, uint32_t& slots);
    // push() for a chain not in flight: Broken on a broken queue, else the device's mistake.
    // As the caller's result, so that the caller reaches it by a tail call.
    template <typename Result>
    [[gnu::noinline, gnu::cold]] Result refuse_push();
    // needs_interrupt() for the slots used since the last decision: used_since_signal_ and
    // `pushed` more, > 0 in all. As the caller's result, built where it is decided.
    template <typename Result>
    Result decide_interrupt(uint32_t pushed);
    [[gnu::always_inline]] inline std::expected<void, QueueError> add_segment(
        DescriptorChain& chain, uint64_t addr, uint32_t len, bool writable);
    void write_device_event(uint16_t flags, uint16_t off_wrap);
    // Every error path: the queue stays broken. No descriptor looks available and nothing
    // stays in flight, so pop() and push() refuse by the checks they make anyway.
    // Result: the caller's own, where that makes the call a tail call.
    template <typename Result = std::unexpected<QueueError>>
    [[gnu::cold, gnu::noinline]] Result fail(QueueError error);

    const GuestMemory& memory_;
    // Where the last buffer was: the next is almost always in the same (RAM) region. Filled
    // by add_segment() only, and only on a queue of at least kInlineSegments entries.
    GuestMemory::RegionCache region_cache_;
    vring_packed_desc* const ring_;  // size_ descriptors, host view
    const vring_packed_desc* const ring_end_;
    // The fast walk from a descriptor before this one stays inside the ring: it reads at most
    // kInlineSegments + 1 descriptors (the last one's flags only). ring_ itself on a ring of
    // at most kInlineSegments entries, where every walk takes the wrap test.
    const vring_packed_desc* const unwrapped_end_;
    // The two struct vring_packed_desc_event areas, each read or written as one little-endian
    // 32-bit word (off_wrap in the low half, flags in the high half).
    uint32_t* const driver_event_;  // written by the driver: interrupt suppression
    uint32_t* const device_event_;  // written by us: kick suppression
    const uint16_t size_;
    const bool event_idx_;
    const bool indirect_;
    bool broken_ = false;

    // Where the next available descriptor is expected, and the driver's wrap counter there, as
    // the AVAIL/USED bits an available descriptor carries in this lap (AVAIL for wrap 1).
    uint16_t next_avail_ = 0;
    uint16_t avail_bits_;
    // Where the next used element goes, and our (device) wrap counter there, as the AVAIL/USED
    // bits of a used element in this lap (both for wrap 1, neither for 0).
    uint16_t next_used_ = 0;
    uint16_t used_bits_;

    // Each buffer id's entry: while in flight, the token its chain carries (token_word());
    // kFree for a free id of the ring, 0 for an id beyond it. All 2^16 ids, so one load checks
    // an id in pop() (only a ring's free id holds kFree), and one compare a whole token in
    // push(): no token matches kFree (its id would be 0xffff, beyond the ring) or 0 (its id
    // would be 0, in the ring), so what matches is a chain in flight with its real slot count.
    static constexpr uint32_t kFree = 0xffffffff;
    // avail_bits_ of a broken queue: (flags & (AVAIL | USED)) never equals it.
    static constexpr uint16_t kNeverAvailable = 1;
    IndexTable<uint32_t> in_flight_;
    // Ring slots all chains in flight hold.
    uint32_t in_flight_slots_ = 0;

    // Ring slots made used since the last needs_interrupt().
    uint64_t used_since_signal_ = 0;
    // The device event suppression word we last wrote (off_wrap | flags << 16); ~0 before any.
    uint32_t device_event_shadow_ = ~uint32_t{0};
};

}  // namespace vfsdax::virtio
