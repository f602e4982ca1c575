// SPDX-License-Identifier: Apache-2.0
// CommonConfig: the virtio common configuration structure and the device status machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pci/interrupt_router.hpp"
#include "pci/transport_interrupt.hpp"
#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/device.hpp"
#include "vfsdax/virtio/queue_config.hpp"

namespace vfsdax::pci {

// Not thread-safe: the transport calls it under its register lock. Owns the QueueConfigs;
// on DRIVER_OK activates the enabled queues and hands them to the device.
class CommonConfig {
public:
    CommonConfig(virtio::Device& device, const GuestMemory& memory, InterruptRouter& router,
                 TransportInterrupt& interrupt);

    // An access of the wrong width or at no field's offset reads 0 and writes nothing.
    uint32_t read(uint32_t offset, std::size_t width) const;
    void write(uint32_t offset, std::size_t width, uint32_t value);

    // A kick of `queue`; ignored unless the device is live and the queue enabled.
    void notify(uint16_t queue, uint32_t data);
    // Writing 0 to device_status: the device stops and every register returns to its default.
    void reset();

    uint16_t num_queues() const { return static_cast<uint16_t>(queues_.size()); }

private:
    void restore_defaults();
    bool negotiated(unsigned feature) const;
    void write_status(uint8_t value);
    bool features_acceptable() const;
    void activate_device();
    void write_queue_size(virtio::QueueConfig& queue, uint16_t size);
    void enable_queue(uint16_t index);
    void reset_queue(uint16_t index);
    virtio::QueueConfig* selected_queue();
    const virtio::QueueConfig* selected_queue() const;
    static void set_address_half(GuestAddress& address, bool high, uint32_t value);

    virtio::Device& device_;
    const GuestMemory& memory_;
    InterruptRouter& router_;
    TransportInterrupt& interrupt_;
    const uint64_t offered_features_;
    const std::vector<uint16_t> max_sizes_;

    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint8_t status_ = 0;
    // Device::activate succeeded (and no reset since): only then may the device be kicked or
    // asked to reset or enable a queue. DRIVER_OK alone is not enough: activation can fail.
    bool device_active_ = false;
    uint16_t queue_select_ = 0;
    std::vector<virtio::QueueConfig> queues_;
};

}  // namespace vfsdax::pci
