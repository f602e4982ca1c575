// SPDX-License-Identifier: Apache-2.0
// Device: what a virtio device model offers any transport. A device never knows its transport.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/interrupt.hpp"
#include "vfsdax/virtio/queue.hpp"

namespace vfsdax::virtio {

// A shared memory region the device exposes (virtio 1.2, 2.10): id and size in bytes.
// The host memory behind it belongs to the device; the transport only places it in a BAR.
struct SharedMemoryRegionInfo {
    uint8_t id = 0;
    uint64_t size = 0;
};

class VFSDAX_EXPORT Device {
public:
    virtual ~Device() = default;

    virtual uint32_t device_type() const = 0;  // VIRTIO_ID_*
    // Every feature the device offers, ring features (kRingFeatures) and VIRTIO_F_VERSION_1
    // included; the transport offers exactly these.
    virtual uint64_t device_features() const = 0;
    // One entry per queue, the largest size the device accepts for it.
    virtual std::vector<uint16_t> queue_max_sizes() const = 0;

    // Device configuration space. Out-of-range bytes read as zero and writes to them are
    // ignored by the device; the transport checks width and alignment before calling.
    virtual uint32_t config_size() const = 0;
    virtual void read_config(uint32_t offset, std::span<std::byte> data) const = 0;
    virtual void write_config(uint32_t offset, std::span<const std::byte> data) = 0;

    virtual std::vector<SharedMemoryRegionInfo> shared_memory_regions() const { return {}; }

    // DRIVER_OK: `queues` has one entry per queue, null where the driver left it disabled.
    // `features` is the negotiated set. An error string means the device cannot run; the
    // transport then sets DEVICE_NEEDS_RESET.
    virtual std::expected<void, std::string> activate(
        const GuestMemory& memory, Interrupt& interrupt, uint64_t features,
        std::vector<std::unique_ptr<Queue>> queues) = 0;

    // Driver wrote 0 to device_status (or the VMM resets the device): stop using the queues
    // and return to the just-constructed state. Must not return while a worker still touches a
    // queue or guest memory.
    virtual void reset() = 0;

    // The driver kicked queue `index` (notify write or ioeventfd). `data` carries the
    // VIRTIO_F_NOTIFICATION_DATA payload when negotiated, else 0. Transports call this (and
    // reset_queue/enable_queue) only between a successful activate() and reset().
    virtual void queue_notified(uint16_t index, uint32_t data) = 0;

    // VIRTIO_F_RING_RESET: the driver reset one queue, then may enable it again. A device
    // that does not offer VIRTIO_F_RING_RESET is never asked.
    virtual void reset_queue(uint16_t /*index*/) {}
    virtual void enable_queue(uint16_t /*index*/, std::unique_ptr<Queue> /*queue*/) {}

    // The device's state, a line per item (e.g. per queue: Queue::describe() and what the
    // device holds of it), for a report on a guest that looks stuck. Any thread, any time.
    virtual std::vector<std::string> describe() const { return {}; }

    // The transport subscribes here to learn of device-initiated config changes, also before
    // activation (it bumps config_generation and, once active, interrupts).
    void set_config_change_listener(std::function<void()> listener) {
        config_listener_ = std::move(listener);
    }

protected:
    void notify_config_changed() {
        if (config_listener_) config_listener_();
    }

private:
    std::function<void()> config_listener_;
};

}  // namespace vfsdax::virtio
