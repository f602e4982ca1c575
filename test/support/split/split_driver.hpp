// SPDX-License-Identifier: Apache-2.0
// SplitDriver: the driver side of one split virtqueue (virtio 1.2, 2.7), for tests and benches.
//
// Written from the spec, not from lib/virtio: it lays the rings out in TestMemory, offers
// buffers, decides kicks, collects used elements and drives used-buffer notification
// suppression the way Linux's virtio_ring does. It also gives raw access to every ring field and
// descriptor so a test can forge what a buggy or hostile guest would write.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "driver_buffer.hpp"
#include "test_memory.hpp"
#include "vfsdax/memory/guest_address.hpp"
#include "vfsdax/virtio/queue_config.hpp"

namespace vfsdax::test {

// struct virtq_desc, as the guest writes it.
struct SplitDesc {
    uint64_t addr = 0;
    uint32_t len = 0;
    uint16_t flags = 0;
    uint16_t next = 0;
};

// struct virtq_used_elem.
struct SplitUsedElem {
    uint32_t id = 0;
    uint32_t len = 0;
};

class SplitDriver {
public:
    using Buffer = DriverBuffer;

    // Desc table (16 * size, align 16), avail ring (6 + 2 * size, align 2), used ring
    // (6 + 8 * size, align 4).
    struct Layout {
        GuestAddress desc, avail, used;
    };
    static constexpr uint16_t kDescF_Next = 1;
    static constexpr uint16_t kDescF_Write = 2;
    static constexpr uint16_t kDescF_Indirect = 4;
    static constexpr uint16_t kAvailF_NoInterrupt = 1;
    static constexpr uint16_t kUsedF_NoNotify = 1;

    // `features`: the negotiated feature bits (only EVENT_IDX and INDIRECT_DESC matter here).
    // Rings are allocated from `memory` with the spec's alignment, or placed at `layout`.
    SplitDriver(TestMemory& memory, uint16_t size, uint64_t features);
    SplitDriver(TestMemory& memory, uint16_t size, uint64_t features, Layout layout);

    // What the transport would hold once the driver set the queue ready.
    virtio::QueueConfig config(uint16_t max_size = 32768) const;
    const Layout& layout() const { return layout_; }
    uint16_t size() const { return size_; }
    uint64_t features() const { return features_; }
    TestMemory& memory() { return memory_; }

    // A driver-owned guest buffer of `len` bytes (bump-allocated, never freed).
    DriverBuffer alloc_buffer(uint32_t len, uint64_t align = 8);

    // Places a chain in free descriptors and its head in the next avail entry; invisible to the
    // device until publish(). Returns the head, or nullopt when too few descriptors are free.
    std::optional<uint16_t> add(std::span<const DriverBuffer> readable,
                                std::span<const DriverBuffer> writable);
    // The same chain as an indirect table referred to by one descriptor (2.7.5.3).
    std::optional<uint16_t> add_indirect(std::span<const DriverBuffer> readable,
                                         std::span<const DriverBuffer> writable);
    // Makes everything added so far available: release store of avail->idx (2.7.13.3).
    void publish();
    // After publish(): whether to notify the device (2.7.13.4). Full fence, then avail_event
    // under EVENT_IDX (vring_need_event over the entries published since the last decision),
    // else the used ring's NO_NOTIFY flag.
    bool kick_needed();

    // The next used element, or nullopt when none (acquire load of used->idx). Frees the chain's
    // descriptors; throws when the device returns a head that is not in flight or claims more
    // bytes than the chain's writable buffers.
    std::optional<SplitUsedElem> get_used();
    // Used-buffer notification suppression (2.7.10): disable sets NO_INTERRUPT (without
    // EVENT_IDX) and nothing under EVENT_IDX, except stop moving used_event; enable writes
    // used_event = next used index to consume (or clears NO_INTERRUPT), fences and returns
    // whether used entries are already pending (the driver must poll again, 2.7.14).
    void disable_interrupts();
    bool enable_interrupts();
    // Linux's virtqueue_enable_cb_delayed(): interrupt only after ~3/4 of the in-flight
    // buffers are used. Returns whether enough are already used (poll instead).
    bool enable_interrupts_delayed();

    // Bookkeeping.
    uint16_t num_free() const { return static_cast<uint16_t>(free_.size()); }
    uint16_t in_flight() const { return in_flight_count_; }
    uint16_t avail_shadow() const { return avail_shadow_; }  // next avail idx to publish
    uint16_t last_used() const { return last_used_; }        // next used entry to consume
    // Raw ring access, for forging malformed rings. None of these touch the bookkeeping.
    SplitDesc desc(uint16_t i) const;
    void set_desc(uint16_t i, const SplitDesc& d);
    GuestAddress desc_addr(uint16_t i) const;
    uint16_t avail_flags() const;
    void set_avail_flags(uint16_t flags);
    uint16_t avail_idx() const;
    void set_avail_idx(uint16_t idx);  // release store
    uint16_t avail_entry(uint16_t slot) const;
    void set_avail_entry(uint16_t slot, uint16_t head);
    uint16_t used_event() const;
    void set_used_event(uint16_t event);
    uint16_t used_flags() const;
    uint16_t used_idx() const;  // acquire load
    SplitUsedElem used_elem(uint16_t slot) const;
    uint16_t avail_event() const;
    // Puts `head` in the next avail entry and publishes it, with no descriptor bookkeeping.
    void publish_raw_head(uint16_t head);
    // An indirect table of `count` raw descriptors in guest memory (for forging).
    GuestAddress write_table(std::span<const SplitDesc> table);

private:
    struct Chain {
        bool in_flight = false;
        std::vector<uint16_t> descs;  // table entries the chain occupies
        uint64_t writable = 0;        // bytes the device may write
    };
    struct Table {
        GuestAddress addr;
        uint32_t capacity = 0;  // descriptors
    };

    std::byte* ptr(GuestAddress base, uint64_t offset, uint64_t len) const;
    std::optional<uint16_t> place(std::span<const SplitDesc> descs, uint64_t writable);
    bool event_idx() const;

    TestMemory& memory_;
    uint16_t size_;
    uint64_t features_;
    Layout layout_;
    std::vector<uint16_t> free_;  // free descriptor indices (a stack)
    std::vector<Chain> chains_;   // by head
    std::vector<Table> tables_;   // per head: a reusable indirect table
    uint16_t avail_shadow_ = 0;
    uint16_t published_ = 0;     // avail->idx as last published
    uint16_t kick_checked_ = 0;  // avail->idx at the last kick decision
    uint16_t last_used_ = 0;
    uint16_t in_flight_count_ = 0;
    bool interrupts_enabled_ = true;
    // Reused per add(): steady state allocates nothing (benchmarks run the driver model too).
    std::vector<SplitDesc> desc_scratch_;
    std::vector<uint16_t> taken_scratch_;
};

}  // namespace vfsdax::test
