// SPDX-License-Identifier: Apache-2.0
// ConfigSpace: masked register writes, the capability list and BAR decoding.
#include "pci/config_space.hpp"

#include <linux/pci_regs.h>

#include <algorithm>

namespace vfsdax::pci {

ConfigSpace::ConfigSpace() {
    set(PCI_HEADER_TYPE, 1, PCI_HEADER_TYPE_NORMAL);
    set(PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
    set_writable(PCI_COMMAND, 2,
                 PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    // Firmware and Linux write these two; they have no effect on an emulated function.
    set_writable(PCI_CACHE_LINE_SIZE, 1, 0xff);
    set_writable(PCI_LATENCY_TIMER, 1, 0xff);
    set_writable(PCI_INTERRUPT_LINE, 1, 0xff);
}

uint32_t ConfigSpace::read(uint32_t offset, std::size_t width) const {
    uint32_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value |= uint32_t{bytes_[offset + i]} << (8 * i);
    return value;
}

void ConfigSpace::guest_write(uint32_t offset, std::size_t width, uint32_t value) {
    for (std::size_t i = 0; i < width; ++i) {
        const uint8_t mask = write_mask_[offset + i];
        const uint8_t byte = static_cast<uint8_t>(value >> (8 * i));
        bytes_[offset + i] = static_cast<uint8_t>((bytes_[offset + i] & ~mask) | (byte & mask));
    }
}

void ConfigSpace::set(uint32_t offset, std::size_t width, uint32_t value) {
    for (std::size_t i = 0; i < width; ++i)
        bytes_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

void ConfigSpace::set_writable(uint32_t offset, std::size_t width, uint32_t mask) {
    for (std::size_t i = 0; i < width; ++i)
        write_mask_[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
}

std::optional<uint8_t> ConfigSpace::add_capability(std::span<const std::byte> body) {
    const std::size_t at = next_capability_;
    if (body.size() < 2 || body.size() > kSize - at) return std::nullopt;
    for (std::size_t i = 0; i < body.size(); ++i) bytes_[at + i] = static_cast<uint8_t>(body[i]);
    bytes_[at + PCI_CAP_LIST_NEXT] = 0;
    if (last_capability_ == 0) {
        bytes_[PCI_CAPABILITY_LIST] = static_cast<uint8_t>(at);
    } else {
        bytes_[last_capability_ + PCI_CAP_LIST_NEXT] = static_cast<uint8_t>(at);
    }
    last_capability_ = static_cast<uint8_t>(at);
    next_capability_ =
        static_cast<uint8_t>(std::min<std::size_t>((at + body.size() + 3) & ~std::size_t{3}, 0xff));
    return static_cast<uint8_t>(at);
}

void ConfigSpace::define_bar64(uint8_t index, uint64_t size, bool prefetchable) {
    const uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * index;
    uint32_t flags = PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_64;
    if (prefetchable) flags |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    set(reg, 4, flags);
    set(reg + 4, 4, 0);
    const uint64_t address_mask = ~(size - 1);
    set_writable(reg, 4, static_cast<uint32_t>(address_mask) & PCI_BASE_ADDRESS_MEM_MASK);
    set_writable(reg + 4, 4, static_cast<uint32_t>(address_mask >> 32));
    bar_size_[index] = size;
}

std::optional<BarInfo> ConfigSpace::bar(uint8_t index) const {
    if (index >= bar_size_.size() || bar_size_[index] == 0) return std::nullopt;
    const uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * index;
    const uint32_t low = read(reg, 4);
    BarInfo info;
    info.index = index;
    info.size = bar_size_[index];
    info.is_64bit = true;
    info.prefetchable = (low & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
    const uint64_t address = (uint64_t{read(reg + 4, 4)} << 32) | (low & PCI_BASE_ADDRESS_MEM_MASK);
    // Zero is "not programmed"; an address whose BAR would wrap the address space is the
    // read-back of a sizing write, not a placement.
    const bool decoding = (read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY) != 0;
    if (decoding && address != 0 && address + info.size > address) info.address = address;
    return info;
}

}  // namespace vfsdax::pci
