// SPDX-License-Identifier: Apache-2.0
// Replays KVM's coalesced-write ring to the PIO and MMIO buses.
#include "coalesced_writes.hpp"

#include <algorithm>
#include <atomic>
#include <span>

namespace vfsdax::vmm {

CoalescedWrites::CoalescedWrites(kvm_coalesced_mmio_ring* ring, std::size_t page_size)
    : ring_(ring),
      capacity_(static_cast<uint32_t>((page_size - sizeof(kvm_coalesced_mmio_ring)) /
                                      sizeof(kvm_coalesced_mmio))) {}

void CoalescedWrites::drain(const Bus& pio, const Bus& mmio) {
    // KVM stores an entry, then publishes it by advancing `last` (release).
    std::atomic_ref<uint32_t> first(ring_->first);
    std::atomic_ref<uint32_t> last(ring_->last);
    // The common case, nothing buffered, takes no lock. A drain in progress elsewhere has not
    // advanced `first` yet, so this thread then waits for it below.
    if (first.load(std::memory_order_acquire) == last.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex_);
    uint32_t next = first.load(std::memory_order_relaxed);
    const uint32_t end = last.load(std::memory_order_acquire);
    // KVM never moves `last` past the ring's end; an index beyond it would be a kernel bug.
    if (next >= capacity_ || end >= capacity_) return;
    // The entries follow the header (the flexible array has no bounds to index).
    const auto* entries = reinterpret_cast<const kvm_coalesced_mmio*>(
        reinterpret_cast<const std::byte*>(ring_) + sizeof(kvm_coalesced_mmio_ring));
    while (next != end) {
        const kvm_coalesced_mmio& entry = entries[next];
        const std::span data(reinterpret_cast<const std::byte*>(entry.data),
                             std::min<std::size_t>(entry.len, sizeof(entry.data)));
        // A write nothing claims is dropped, as an exit for it would be.
        (void)(entry.pio ? pio : mmio).write(entry.phys_addr, data);
        next = (next + 1) % capacity_;
        // Frees the slot for KVM only once the device has the write.
        first.store(next, std::memory_order_release);
    }
}

}  // namespace vfsdax::vmm
