// SPDX-License-Identifier: Apache-2.0
// Builds the vendor-specific virtio capabilities and the MSI-X capability.
#include "pci/capabilities.hpp"

#include <linux/pci_regs.h>

#include <bit>
#include <cstddef>
#include <cstring>
#include <span>

#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::pci {

namespace {

// The uapi structures are little-endian; so is every host this library builds for.
static_assert(std::endian::native == std::endian::little);

virtio_pci_cap vendor_cap(uint8_t type, uint8_t bar, uint64_t offset, uint64_t length,
                          std::size_t struct_size) {
    virtio_pci_cap cap{};
    cap.cap_vndr = PCI_CAP_ID_VNDR;
    cap.cap_len = static_cast<uint8_t>(struct_size);
    cap.cfg_type = type;
    cap.bar = bar;
    cap.offset = static_cast<uint32_t>(offset);
    cap.length = static_cast<uint32_t>(length);
    return cap;
}

template <typename T>
std::expected<uint8_t, std::string> add(ConfigSpace& config, const T& cap) {
    std::byte bytes[sizeof(T)];
    std::memcpy(bytes, &cap, sizeof(T));
    auto at = config.add_capability(bytes);
    if (!at) return std::unexpected("capabilities do not fit in configuration space");
    return *at;
}

// MSI-X capability (PCI 3.0, 6.8.2): not in the uapi as a struct, only as offsets.
struct MsixCap {
    uint8_t id;
    uint8_t next;
    uint16_t control;
    uint32_t table;
    uint32_t pba;
};
static_assert(sizeof(MsixCap) == PCI_CAP_MSIX_SIZEOF);

}  // namespace

std::expected<CapabilityOffsets, std::string> install_capabilities(ConfigSpace& config,
                                                                   const RegistersLayout& registers,
                                                                   const SharedMemoryLayout& shared,
                                                                   uint16_t msix_vectors) {
    auto plain = [&](uint8_t type, const BarRange& range) {
        return add(config, vendor_cap(type, kRegistersBar, range.offset, range.length,
                                      sizeof(virtio_pci_cap)));
    };
    if (auto r = plain(VIRTIO_PCI_CAP_COMMON_CFG, registers.common); !r)
        return std::unexpected(r.error());

    virtio_pci_notify_cap notify{};
    notify.cap = vendor_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, kRegistersBar, registers.notify.offset,
                            registers.notify.length, sizeof(notify));
    notify.notify_off_multiplier = kNotifyOffMultiplier;
    if (auto r = add(config, notify); !r) return std::unexpected(r.error());

    if (auto r = plain(VIRTIO_PCI_CAP_ISR_CFG, registers.isr); !r)
        return std::unexpected(r.error());
    if (registers.device.length != 0) {
        if (auto r = plain(VIRTIO_PCI_CAP_DEVICE_CFG, registers.device); !r) {
            return std::unexpected(r.error());
        }
    }

    virtio_pci_cfg_cap window{};
    window.cap = vendor_cap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, sizeof(window));
    auto pci_cfg = add(config, window);
    if (!pci_cfg) return std::unexpected(pci_cfg.error());
    // cap.bar, cap.offset, cap.length and pci_cfg_data are the driver's (virtio 1.2, 4.1.4.9).
    config.set_writable(*pci_cfg + VIRTIO_PCI_CAP_BAR, 1, 0xff);
    config.set_writable(*pci_cfg + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
    config.set_writable(*pci_cfg + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff);
    config.set_writable(*pci_cfg + offsetof(virtio_pci_cfg_cap, pci_cfg_data), 4, 0xffffffff);

    for (const SharedMemoryPlacement& region : shared.regions) {
        virtio_pci_cap64 cap{};
        cap.cap = vendor_cap(VIRTIO_PCI_CAP_SHARED_MEMORY_CFG, region.bar, region.offset,
                             region.size, sizeof(cap));
        cap.cap.id = region.id;
        cap.offset_hi = static_cast<uint32_t>(region.offset >> 32);
        cap.length_hi = static_cast<uint32_t>(region.size >> 32);
        if (auto r = add(config, cap); !r) return std::unexpected(r.error());
    }

    MsixCap msix{};
    msix.id = PCI_CAP_ID_MSIX;
    msix.control = static_cast<uint16_t>(msix_vectors - 1);
    msix.table = static_cast<uint32_t>(registers.msix_table.offset) | kRegistersBar;
    msix.pba = static_cast<uint32_t>(registers.msix_pba.offset) | kRegistersBar;
    auto msix_at = add(config, msix);
    if (!msix_at) return std::unexpected(msix_at.error());
    config.set_writable(*msix_at + PCI_MSIX_FLAGS, 2,
                        PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    return CapabilityOffsets{*msix_at, *pci_cfg};
}

}  // namespace vfsdax::pci
