// SPDX-License-Identifier: Apache-2.0
// PciHostBridge: bus 0 behind type-1 configuration access on ports 0xCF8 (address) and 0xCFC,
// and its INTx wiring to the I/O APIC.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "bus.hpp"
#include "layout.hpp"

namespace vfsdax::vmm {

// One PCI function's configuration space, as the host bridge sees it.
class PciFunction {
public:
    virtual ~PciFunction() = default;
    // `offset` + data.size() never crosses a dword and data.size() is 1, 2 or 4.
    virtual void read_config(uint16_t offset, std::span<std::byte> data) = 0;
    virtual void write_config(uint16_t offset, std::span<const std::byte> data) = 0;
};

// The CONFIG_ADDRESS register (PCI Local Bus 3.0, 3.2.2.3.2).
struct PciConfigAddress {
    bool enabled;
    uint8_t bus;
    uint8_t device;
    uint8_t function;
    uint8_t reg;  // dword-aligned register offset

    static constexpr PciConfigAddress decode(uint32_t value) {
        return {(value & 0x80000000u) != 0, static_cast<uint8_t>(value >> 16),
                static_cast<uint8_t>((value >> 11) & 0x1f), static_cast<uint8_t>((value >> 8) & 7),
                static_cast<uint8_t>(value & 0xfc)};
    }
};

// Inserted on the PIO bus at 0xCF8 with size 8. Function 0 of each device slot on bus 0;
// slot 0 is the bridge's own host-bridge function (class 06/00), which Linux's type-1 probe
// (pci_sanity_check) looks for. Accesses to empty slots read all ones.
//
// Each slot's INTA# drives GSI layout::pci_intx_gsi(slot). Slots that share a GSI are
// wired-OR'd, as PCI INTx lines are: KVM keeps one level per GSI for all of user space.
class PciHostBridge : public BusDevice {
public:
    static constexpr unsigned kSlots = 32;
    // Sets the level of an I/O APIC input; called on each change only.
    using GsiLine = std::function<void(uint32_t gsi, bool asserted)>;

    explicit PciHostBridge(GsiLine gsi_line);

    // The first free slot, or nullopt when the bus is full.
    std::optional<uint8_t> add(std::shared_ptr<PciFunction> function);

    // Any thread: `slot`'s INTA# is asserted or not. An unknown slot is ignored.
    void set_intx(uint8_t slot, bool asserted);

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    // The function a data-port access at `offset` (4..7) reaches and its config offset.
    std::pair<PciFunction*, uint16_t> target(uint64_t offset, std::size_t width) const;

    std::mutex mutex_;  // CONFIG_ADDRESS and the data access that follows go together
    uint32_t address_ = 0;
    std::array<std::shared_ptr<PciFunction>, kSlots> slots_;

    // Not mutex_: a config write (INTx disable) may change a line while mutex_ is held.
    std::mutex intx_mutex_;
    GsiLine gsi_line_;
    std::array<uint32_t, layout::kPciIntxGsis> asserting_slots_{};  // per GSI, bit N = slot N
};

}  // namespace vfsdax::vmm
