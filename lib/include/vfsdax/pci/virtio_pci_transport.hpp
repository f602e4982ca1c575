// SPDX-License-Identifier: Apache-2.0
// VirtioPciTransport: a virtio-pci (modern) function in front of any virtio::Device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/pci/bar_info.hpp"
#include "vfsdax/pci/interrupt_sink.hpp"
#include "vfsdax/virtio/device.hpp"

namespace vfsdax::pci {

// Identity fields the owner may choose; the rest (vendor, device id, class) follow the spec.
struct PciIdentity {
    uint16_t subsystem_vendor = 0x1af4;
    uint16_t subsystem_id = 0x1100;
    uint8_t interrupt_line = 0xff;  // "unknown" until firmware or the guest assigns one
};

// The guest side is the PCI function: configuration space (type 0, capabilities, MSI-X) and
// BAR 0 (virtio structures, notify doorbells, MSI-X table and PBA); when the device has shared
// memory regions, a 64-bit prefetchable BAR 2 holds them. The owner (a VMM) routes the
// guest's config and BAR accesses here, delivers interrupts through the InterruptSink, and maps
// the shared memory BAR itself (this class only sizes and places it).
//
// Every access method takes guest-controlled offsets and widths: accesses of a width, offset
// or alignment the register does not have are ignored and read as zero. Thread-safe: vCPU
// threads may access concurrently, and device workers signal through the virtio::Interrupt
// the transport hands the device.
class VFSDAX_EXPORT VirtioPciTransport {
public:
    // Fails when the device cannot sit behind this transport: it does not offer
    // VIRTIO_F_VERSION_1, has no queues or too many (more than 2047), a queue size of 0 or
    // above 32768, device config larger than 4 KiB, or shared memory regions that are empty,
    // share an id, or do not fit in configuration space (3 regions; 4 without device config).
    // `device`, `memory` and `sink` must outlive the transport.
    static std::expected<VirtioPciTransport, std::string> create(virtio::Device& device,
                                                                 const GuestMemory& memory,
                                                                 InterruptSink& sink,
                                                                 PciIdentity identity = {});
    VirtioPciTransport(VirtioPciTransport&&) noexcept;
    VirtioPciTransport& operator=(VirtioPciTransport&&) noexcept;
    // Resets the device, so no worker signals a destroyed transport.
    ~VirtioPciTransport();

    // Configuration space (type-1 port I/O or MMCONFIG): data.size() is the access width.
    void config_read(uint32_t offset, std::span<std::byte> data);
    void config_write(uint32_t offset, std::span<const std::byte> data);

    // Memory accesses inside a BAR; `offset` is relative to the BAR's address.
    void bar_read(uint8_t bar, uint64_t offset, std::span<std::byte> data);
    void bar_write(uint8_t bar, uint64_t offset, std::span<const std::byte> data);

    std::vector<BarInfo> bars() const;
    // Called after the guest moves a BAR or toggles memory decoding, with the BAR's new state,
    // outside the transport's locks (the listener may call back into the transport).
    void set_bar_listener(std::function<void(const BarInfo&)> listener);
    // Called with the reason whenever the function sets DEVICE_NEEDS_RESET (a ring the guest
    // broke, a device that would not start), on whichever thread found it, possibly under
    // the transport's locks: log and return. Set before the guest runs.
    void set_needs_reset_listener(std::function<void(std::string_view)> listener);

    std::vector<NotifyAddress> notify_addresses() const;
    // The ioeventfd path: queue `queue` was kicked. `data` is the VIRTIO_F_NOTIFICATION_DATA
    // value when the owner has it, else 0. Ignored unless the queue is live.
    void notify(uint16_t queue, uint32_t data);

    std::vector<SharedMemoryPlacement> shared_memory() const;

    // A reset from the owner (VM reset): as if the driver wrote 0 to device_status.
    void reset();

    // The function's state, a line per item, for a report on a guest that looks stuck: device
    // status and interrupts (InterruptRouter), then Device::describe()'s lines.
    std::vector<std::string> describe() const;

private:
    struct Impl;
    VFSDAX_LOCAL explicit VirtioPciTransport(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace vfsdax::pci
