// SPDX-License-Identifier: Apache-2.0
// Type-1 configuration access decoding and the host bridge's own config space.
#include "pci_host.hpp"

#include <linux/pci_regs.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace vfsdax::vmm {
namespace {

// Red Hat's "QEMU PCIe host bridge" ID: Linux binds no driver or quirk to it.
constexpr uint16_t kVendor = 0x1b36, kDevice = 0x0008;

class HostBridgeFunction : public PciFunction {
public:
    HostBridgeFunction() {
        put16(PCI_VENDOR_ID, kVendor);
        put16(PCI_DEVICE_ID, kDevice);
        put16(PCI_CLASS_DEVICE, 0x0600);  // bridge, host
        space_[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
    }
    void read_config(uint16_t offset, std::span<std::byte> data) override {
        for (std::size_t i = 0; i < data.size(); ++i)
            data[i] = std::byte{offset + i < space_.size() ? space_[offset + i] : uint8_t{0}};
    }
    // Nothing in the bridge's header is writable.
    void write_config(uint16_t, std::span<const std::byte>) override {}

private:
    void put16(unsigned offset, uint16_t v) {
        space_[offset] = v & 0xff;
        space_[offset + 1] = v >> 8;
    }
    std::array<uint8_t, 64> space_{};
};

}  // namespace

PciHostBridge::PciHostBridge(GsiLine gsi_line) : gsi_line_(std::move(gsi_line)) {
    slots_[0] = std::make_shared<HostBridgeFunction>();
}

void PciHostBridge::set_intx(uint8_t slot, bool asserted) {
    if (slot >= kSlots) return;
    const uint32_t gsi = layout::pci_intx_gsi(slot);
    std::lock_guard lock(intx_mutex_);
    uint32_t& slots = asserting_slots_[gsi - layout::kPciIntxFirstGsi];
    const bool was = slots != 0;
    const uint32_t bit = 1u << slot;
    slots = asserted ? (slots | bit) : (slots & ~bit);
    // Under the lock, so that KVM sees the changes of one GSI in order.
    if ((slots != 0) != was) gsi_line_(gsi, slots != 0);
}

std::optional<uint8_t> PciHostBridge::add(std::shared_ptr<PciFunction> function) {
    std::lock_guard lock(mutex_);
    for (unsigned i = 0; i < kSlots; ++i) {
        if (!slots_[i]) {
            slots_[i] = std::move(function);
            return static_cast<uint8_t>(i);
        }
    }
    return std::nullopt;
}

std::pair<PciFunction*, uint16_t> PciHostBridge::target(uint64_t offset, std::size_t width) const {
    const auto a = PciConfigAddress::decode(address_);
    const uint64_t byte = offset - 4;
    if (!a.enabled || a.bus != 0 || a.function != 0 || byte + width > 4) return {};
    // Sizes 1, 2 and 4 only, naturally aligned.
    if ((width != 1 && width != 2 && width != 4) || byte % width != 0) return {};
    return {slots_[a.device].get(), static_cast<uint16_t>(a.reg + byte)};
}

void PciHostBridge::read(uint64_t offset, std::span<std::byte> data) {
    std::lock_guard lock(mutex_);
    if (offset < 4) {
        // CONFIG_ADDRESS reads back only as a whole dword; Linux's type-1 probe checks that.
        if (offset == 0 && data.size() == 4) {
            std::memcpy(data.data(), &address_, 4);
        } else {
            std::fill(data.begin(), data.end(), std::byte{0xff});
        }
        return;
    }
    auto [function, reg] = target(offset, data.size());
    if (!function) {
        std::fill(data.begin(), data.end(), std::byte{0xff});
        return;
    }
    function->read_config(reg, data);
}

void PciHostBridge::write(uint64_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(mutex_);
    if (offset < 4) {
        if (offset == 0 && data.size() == 4) std::memcpy(&address_, data.data(), 4);
        return;
    }
    auto [function, reg] = target(offset, data.size());
    if (function) function->write_config(reg, data);
}

}  // namespace vfsdax::vmm
