// SPDX-License-Identifier: Apache-2.0
// TransportBus: the VMM's part in tests: routes a driver model's accesses to a transport.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "pci/pci_bus_port.hpp"
#include "vfsdax/pci/interrupt_sink.hpp"
#include "vfsdax/pci/virtio_pci_transport.hpp"

namespace vfsdax::test {

// Records what the transport delivers, as a VMM's KVM_SIGNAL_MSI / KVM_IRQ_LINE would.
class RecordingSink final : public pci::InterruptSink {
public:
    struct Msi {
        uint64_t address;
        uint32_t data;
    };

    void send_msi(uint64_t address, uint32_t data) override;
    void set_intx(bool asserted) override;

    std::vector<Msi> take_msis();
    bool intx() const;
    unsigned intx_changes() const;

private:
    mutable std::mutex mutex_;
    std::vector<Msi> msis_;
    bool intx_ = false;
    unsigned intx_changes_ = 0;
};

// Config accesses go straight through; MMIO goes to the BAR that decodes the address now
// (as the transport reports BAR placement), and nowhere (reads all ones) when none does.
class TransportBus final : public PciBusPort {
public:
    explicit TransportBus(pci::VirtioPciTransport& transport) : transport_(transport) {}

    uint32_t config_read(uint16_t offset, unsigned width) override;
    void config_write(uint16_t offset, unsigned width, uint32_t value) override;
    uint64_t mmio_read(uint64_t address, unsigned width) override;
    void mmio_write(uint64_t address, unsigned width, uint64_t value) override;

    // MMIO accesses that hit no BAR.
    unsigned unclaimed() const { return unclaimed_; }

private:
    struct Target {
        uint8_t bar;
        uint64_t offset;
    };
    bool route(uint64_t address, unsigned width, Target& target) const;

    pci::VirtioPciTransport& transport_;
    unsigned unclaimed_ = 0;
};

}  // namespace vfsdax::test
