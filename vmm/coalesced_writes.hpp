// SPDX-License-Identifier: Apache-2.0
// CoalescedWrites: replays the guest writes KVM buffered without an exit (coalesced PIO/MMIO).
#pragma once

#include <cstdint>
#include <mutex>

#include "bus.hpp"
#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

// KVM appends a write to a registered coalesced zone to one ring per VM, shared with user
// space, and lets the vCPU run on; reads there still exit. Whoever handles an exit must replay
// the ring first, so a device sees the writes before any later access (the PCI host bridge's
// address latch at 0xcf8 before the data access at 0xcfc). Any vCPU thread may drain.
class CoalescedWrites {
public:
    // `ring`: the page at KVM_COALESCED_MMIO_PAGE_OFFSET of a vCPU's mapping, `page_size`
    // bytes long; it must outlive this object.
    CoalescedWrites(kvm_coalesced_mmio_ring* ring, std::size_t page_size);

    // Replays, in order, every write buffered so far to `pio` or `mmio`.
    void drain(const Bus& pio, const Bus& mmio);

private:
    std::mutex mutex_;  // one consumer at a time: `first` is ours to advance
    kvm_coalesced_mmio_ring* ring_;
    uint32_t capacity_;
};

}  // namespace vfsdax::vmm
