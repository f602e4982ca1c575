// SPDX-License-Identifier: Apache-2.0
// VirtioPciDevice: a virtio device on the machine's PCI bus 0, behind libvfsdax's virtio-pci
// transport, with KVM fast paths (ioeventfd doorbells, KVM_SIGNAL_MSI, shared memory slots).
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "machine.hpp"
#include "vfsdax/pci/virtio_pci_transport.hpp"
#include "vfsdax/virtio/device.hpp"

namespace vfsdax::vmm {

// Host memory behind one of the device's shared memory regions (a virtio-fs DAX window). It
// must outlive the VirtioPciDevice.
struct SharedMemoryBacking {
    uint8_t id = 0;
    std::byte* host = nullptr;
    uint64_t size = 0;
};

class VirtioPciDevice {
public:
    // Plugs `device` into the next free slot, places its BARs the way firmware would (32-bit
    // BARs in the MMIO window below 4 GiB, 64-bit ones above RAM), turns memory decoding on
    // and writes the slot's INTx GSI to the interrupt line register. Every shared memory
    // region of the device needs its backing here. `device` and `machine` must outlive the
    // returned object.
    static std::expected<std::unique_ptr<VirtioPciDevice>, std::string> attach(
        Machine& machine, virtio::Device& device, std::vector<SharedMemoryBacking> backings);
    ~VirtioPciDevice();

    uint8_t slot() const { return slot_; }
    // VirtioPciTransport::describe(): for a report on a guest that looks stuck.
    std::vector<std::string> describe() const { return transport_->describe(); }

private:
    class Sink;
    struct Doorbell;
    struct Window;

    explicit VirtioPciDevice(Machine& machine);
    // The transport's BAR listener: moves MMIO bus ranges, ioeventfds and memory slots.
    void bar_changed(const pci::BarInfo& bar);
    std::expected<void, std::string> place_bars();

    Machine& machine_;
    std::unique_ptr<Sink> sink_;
    std::unique_ptr<pci::VirtioPciTransport> transport_;
    uint8_t slot_ = 0;
    std::mutex mutex_;                       // BAR moves come from any vCPU thread
    std::map<uint8_t, uint64_t> mmio_bars_;  // BAR index -> address on the MMIO bus
    std::vector<std::unique_ptr<Doorbell>> doorbells_;
    std::vector<Window> windows_;
};

}  // namespace vfsdax::vmm
