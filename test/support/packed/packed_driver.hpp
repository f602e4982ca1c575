// SPDX-License-Identifier: Apache-2.0
// PackedDriver: the driver side of one packed virtqueue (virtio 1.2, 2.8), for tests and benches.
//
// Written from the spec (and from what Linux's virtio_ring packed path does), never from
// lib/virtio: it lays the ring and both event suppression areas out in TestMemory, manages
// buffer ids and the avail wrap counter, writes a buffer's descriptors with the first one's flags
// last, decides kicks from the device event suppression area, collects used elements by id (in
// any order) and drives the driver event suppression area. Raw accessors let a test forge what a
// buggy or hostile guest would write.
//
// Threading: one thread drives a PackedDriver; the device may run on another thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "driver_buffer.hpp"
#include "test_memory.hpp"
#include "vfsdax/memory/guest_address.hpp"
#include "vfsdax/virtio/queue_config.hpp"

namespace vfsdax::test {

// struct pvirtq_desc as the guest reads or writes it (host byte order).
struct PackedDesc {
    uint64_t addr = 0;
    uint32_t len = 0;
    uint16_t id = 0;
    uint16_t flags = 0;
};

// struct pvirtq_event_suppress.
struct PackedEventSuppress {
    uint16_t off_wrap = 0;
    uint16_t flags = 0;
};

// One used element, as get_used() returns it. `len` means something only when `written` (the
// used descriptor's WRITE flag, 2.8.3/2.8.4); the driver model reports it either way.
struct PackedUsedElem {
    uint16_t id = 0;
    uint32_t len = 0;
    bool written = false;
};

// The device broke a rule the driver can see (a used id not in flight, a length beyond the
// buffer's writable part).
struct DeviceBug : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class PackedDriver {
public:
    using Buffer = DriverBuffer;

    // Descriptor ring (16 * size, align 16), driver and device event suppression (4, align 4).
    struct Layout {
        GuestAddress desc, driver, device;
    };

    static constexpr uint16_t kDescF_Next = 1;
    static constexpr uint16_t kDescF_Write = 2;
    static constexpr uint16_t kDescF_Indirect = 4;
    static constexpr uint16_t kDescF_Avail = 1u << 7;
    static constexpr uint16_t kDescF_Used = 1u << 15;
    static constexpr uint16_t kEventEnable = 0;
    static constexpr uint16_t kEventDisable = 1;
    static constexpr uint16_t kEventDesc = 2;
    static constexpr uint16_t kEventWrap = 1u << 15;  // in off_wrap

    // `features`: the negotiated feature bits (EVENT_IDX and INDIRECT_DESC matter here);
    // features() adds VIRTIO_F_RING_PACKED. Areas are allocated from `memory` with the spec's
    // alignment, or placed at `layout` (which may be anything, for activation tests).
    PackedDriver(TestMemory& memory, uint16_t size, uint64_t features);
    PackedDriver(TestMemory& memory, uint16_t size, uint64_t features, Layout layout);

    // What the transport would hold once the driver set the queue ready.
    virtio::QueueConfig config(uint16_t max_size = 32768) const;
    // The features to activate the queue with: the given ones plus VIRTIO_F_RING_PACKED.
    uint64_t features() const;
    const Layout& layout() const { return layout_; }
    uint16_t size() const { return size_; }
    TestMemory& memory() { return memory_; }

    // A driver-owned guest buffer of `len` bytes (bump-allocated, never freed).
    DriverBuffer alloc_buffer(uint32_t len, uint64_t align = 8);

    // Writes one buffer (readable elements, then writable ones; at least one in all) into the
    // next free ring slots, one descriptor each, chained with NEXT. The buffer id goes in the
    // last descriptor (2.8.6). Invisible to the device until publish(). Returns the buffer id,
    // or nullopt when too few ring slots or no id is free.
    std::optional<uint16_t> add(std::span<const DriverBuffer> readable,
                                std::span<const DriverBuffer> writable);
    // The same buffer as an indirect table (2.8.7) in one ring slot. Needs INDIRECT_DESC.
    std::optional<uint16_t> add_indirect(std::span<const DriverBuffer> readable,
                                         std::span<const DriverBuffer> writable);
    // Makes every buffer added since the last publish() available: their first descriptors'
    // flags, the earliest one last, with release ordering.
    void publish();
    // After publish(): whether to notify the device (2.8.10, Linux's kick_prepare): full fence,
    // then the device event suppression area: DISABLE: no; DESC: only when the published
    // descriptors since the last decision cover (off, wrap); ENABLE (or anything else): yes.
    bool kick_needed();

    // The next used element in ring order, or nullopt when none. Frees the buffer's id and
    // slots; throws DeviceBug when the id is not in flight or `len` exceeds the writable part.
    std::optional<PackedUsedElem> get_used();
    bool has_used() const;

    // Used-buffer notification suppression (the driver area), as Linux drives it.
    // disable: flags = DISABLE. enable: with EVENT_IDX, off_wrap = next used slot and flags =
    // DESC (and off_wrap follows get_used() while DESC), else ENABLE; then a full fence; returns
    // whether used elements are already pending (the driver must poll again).
    void disable_interrupts();
    bool enable_interrupts();
    // Linux's virtqueue_enable_cb_delayed(): DESC at 3/4 of the slots in flight past the next
    // used slot (ENABLE without EVENT_IDX). Returns whether used elements are already pending.
    bool enable_interrupts_delayed();
    // Raw: writes off_wrap then flags, and stops off_wrap from following get_used().
    void set_driver_event(uint16_t flags, uint16_t off_wrap);

    // Bookkeeping.
    uint16_t num_free() const { return num_free_; }  // free ring slots
    uint16_t in_flight() const { return static_cast<uint16_t>(size_ - free_ids_.size()); }
    uint16_t next_avail() const { return next_avail_; }  // next slot add() writes
    bool avail_wrap() const { return avail_wrap_; }
    uint16_t last_used() const { return last_used_; }  // next slot get_used() reads
    bool used_wrap() const { return used_wrap_; }
    static uint16_t off_wrap(uint16_t slot, bool wrap) {
        return static_cast<uint16_t>(slot | (wrap ? kEventWrap : 0));
    }

    // Raw ring access, for forging. None of these touch the bookkeeping.
    PackedDesc desc(uint16_t slot) const;               // flags read with acquire
    void set_desc(uint16_t slot, const PackedDesc& d);  // flags written last, release
    GuestAddress desc_addr(uint16_t slot) const;
    PackedEventSuppress driver_event() const;
    PackedEventSuppress device_event() const;  // one 32-bit snapshot
    // Writes `descs` at next_avail() as the driver would: each one's AVAIL/USED bits from the
    // wrap counter at its slot (over whatever the caller put there), everything else as given
    // (NEXT, WRITE, INDIRECT, id), the first one's flags last. Advances next_avail() and the
    // wrap counter; ids and free slots are left alone. Throws when buffers are added but not
    // yet published.
    void forge(std::span<const PackedDesc> descs);
    // An indirect table of raw descriptors in guest memory (for forging).
    GuestAddress write_table(std::span<const PackedDesc> table);

private:
    struct BufferState {
        uint16_t slots = 0;     // ring slots the buffer took (0: id free)
        uint64_t writable = 0;  // bytes the device may write
    };
    struct Table {
        GuestAddress addr;
        uint32_t capacity = 0;  // descriptors
    };
    struct Pending {
        uint16_t slot;
        uint16_t flags;
    };

    bool event_idx() const;
    bool indirect() const;
    uint16_t avail_bits() const { return avail_wrap_ ? kDescF_Avail : kDescF_Used; }
    void advance_avail();
    // Writes a descriptor, flags included (relaxed), or holds the flags back for publish().
    void write_desc(uint16_t slot, const PackedDesc& d, bool hold_flags);
    uint16_t take_id(uint16_t slots, uint64_t writable);

    TestMemory& memory_;
    uint16_t size_;
    uint64_t features_;
    Layout layout_;
    std::byte* ring_;
    std::byte* driver_area_;
    std::byte* device_area_;

    std::vector<uint16_t> free_ids_;    // a stack
    std::vector<BufferState> buffers_;  // by id
    std::vector<Table> tables_;         // by id: a reusable indirect table
    std::vector<Pending> pending_;      // heads added, not yet published
    uint16_t num_free_;
    uint16_t next_avail_ = 0;
    bool avail_wrap_ = true;
    uint16_t published_avail_ = 0;  // next_avail/wrap as of the last publish()
    bool published_wrap_ = true;
    uint32_t published_since_kick_ = 0;  // slots published since the last kick decision
    uint16_t last_used_ = 0;
    bool used_wrap_ = true;
    uint16_t event_flags_shadow_ = kEventEnable;  // the driver area as we last wrote it
    bool track_used_ = false;  // off_wrap follows get_used() (Linux, while flags == DESC)
};

}  // namespace vfsdax::test
