// SPDX-License-Identifier: Apache-2.0
// Queue: the device side of one virtqueue, split or packed, behind one interface.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>

#include "vfsdax/export.hpp"
#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/descriptor_chain.hpp"
#include "vfsdax/virtio/queue_config.hpp"
#include "vfsdax/virtio/queue_error.hpp"

namespace vfsdax::virtio {

// Not thread-safe: one thread at a time drives a queue (the device serialises pop and push).
// Any error is sticky: the queue reports Broken from then on, and the device should ask its
// transport for DEVICE_NEEDS_RESET. The guest memory must outlive the queue.
class VFSDAX_EXPORT Queue {
public:
    virtual ~Queue() = default;

    // Fills `chain` with the next available buffer. false when the driver has made none
    // available; an error when the ring or the chain is malformed.
    virtual std::expected<bool, QueueError> pop(DescriptorChain& chain) = 0;

    // Returns a popped chain to the driver, `written` bytes placed in its writable part.
    // Chains may be returned in any order (packed: by buffer id; split: by head index).
    virtual std::expected<void, QueueError> push(const DescriptorChain& chain,
                                                 uint32_t written) = 0;

    // After one or more push(): whether the driver wants an interrupt now (NO_INTERRUPT flag,
    // used_event, or the packed driver event suppression area). Resets the batch.
    virtual bool needs_interrupt() = 0;

    // push() then needs_interrupt(), in one call: for the last (or only) chain of a batch, the
    // decision covering every chain pushed since the last one. Nothing is pushed on an error.
    virtual std::expected<bool, QueueError> push_and_needs_interrupt(const DescriptorChain& chain,
                                                                     uint32_t written) = 0;

    // Driver-to-device kick suppression, for a device that drains the queue in a loop:
    // disable while draining, then enable; enable returns true when buffers arrived in between
    // (the device must pop again, or it would miss them).
    virtual void disable_notifications() = 0;
    virtual std::expected<bool, QueueError> enable_notifications() = 0;

    virtual uint16_t size() const = 0;
    virtual bool broken() const = 0;
    // The ring as the device sees it, in one line, for a report on a guest that looks stuck
    // (which side waits for the other): what the driver made available, what was popped and
    // returned, and what each side asked of the other's notifications. Guest-written fields
    // are read once each, as they are now.
    virtual std::string describe() const = 0;
};

// Turns a ready QueueConfig into a SplitQueue or a PackedQueue, by VIRTIO_F_RING_PACKED in
// `features` (the negotiated set; EVENT_IDX and INDIRECT_DESC are read from it too). Checks
// size and ring addresses (alignment, backed by memory) first.
VFSDAX_EXPORT std::expected<std::unique_ptr<Queue>, QueueError> activate_queue(
    const QueueConfig& config, const GuestMemory& memory, uint64_t features);

}  // namespace vfsdax::virtio
