// SPDX-License-Identifier: Apache-2.0
// MsixTable: entry registers, per-vector and function masking, pending bits.
#include "pci/msix_table.hpp"

#include <linux/pci_regs.h>

#include <bit>

namespace vfsdax::pci {

MsixTable::MsixTable(uint16_t vectors) : entries_(vectors), pending_((vectors + 63) / 64) {}

uint32_t MsixTable::read_table(uint64_t offset) const {
    if (offset % 4 != 0 || offset >= table_bytes()) return 0;
    const Entry& e = entries_[offset / kEntrySize];
    switch (offset % kEntrySize) {
        case PCI_MSIX_ENTRY_LOWER_ADDR:
            return e.address_low;
        case PCI_MSIX_ENTRY_UPPER_ADDR:
            return e.address_high;
        case PCI_MSIX_ENTRY_DATA:
            return e.data;
        default:
            return e.control;
    }
}

void MsixTable::write_table(uint64_t offset, uint32_t value, std::vector<MsiMessage>& out) {
    if (offset % 4 != 0 || offset >= table_bytes()) return;
    const auto vector = static_cast<uint16_t>(offset / kEntrySize);
    Entry& e = entries_[vector];
    switch (offset % kEntrySize) {
        case PCI_MSIX_ENTRY_LOWER_ADDR:
            e.address_low = value;
            break;
        case PCI_MSIX_ENTRY_UPPER_ADDR:
            e.address_high = value;
            break;
        case PCI_MSIX_ENTRY_DATA:
            e.data = value;
            break;
        default:
            // Only the mask bit is defined; the rest is reserved and reads as zero.
            e.control = value & PCI_MSIX_ENTRY_CTRL_MASKBIT;
            if (enabled_ && !masked(vector) && pending(vector)) {
                set_pending(vector, false);
                out.push_back(message(vector));
            }
    }
}

uint32_t MsixTable::read_pba(uint64_t offset) const {
    if (offset % 4 != 0 || offset >= pba_bytes()) return 0;
    return static_cast<uint32_t>(pending_[offset / 8] >> (32 * ((offset / 4) % 2)));
}

void MsixTable::set_control(bool enabled, bool function_masked, std::vector<MsiMessage>& out) {
    enabled_ = enabled;
    function_masked_ = function_masked;
    if (enabled_) deliver_unmasked_pending(out);
}

std::optional<MsiMessage> MsixTable::fire(uint16_t vector) {
    if (vector >= entries_.size()) return std::nullopt;
    if (masked(vector)) {
        set_pending(vector, true);
        return std::nullopt;
    }
    return message(vector);
}

unsigned MsixTable::pending_count() const {
    unsigned count = 0;
    for (uint64_t word : pending_) count += static_cast<unsigned>(std::popcount(word));
    return count;
}

void MsixTable::clear_pending() {
    for (uint64_t& word : pending_) word = 0;
}

bool MsixTable::masked(uint16_t vector) const {
    return function_masked_ || (entries_[vector].control & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
}

bool MsixTable::pending(uint16_t vector) const {
    return (pending_[vector / 64] >> (vector % 64)) & 1;
}

void MsixTable::set_pending(uint16_t vector, bool value) {
    const uint64_t bit = uint64_t{1} << (vector % 64);
    if (value) {
        pending_[vector / 64] |= bit;
    } else {
        pending_[vector / 64] &= ~bit;
    }
}

MsiMessage MsixTable::message(uint16_t vector) const {
    const Entry& e = entries_[vector];
    return MsiMessage{(uint64_t{e.address_high} << 32) | e.address_low, e.data};
}

void MsixTable::deliver_unmasked_pending(std::vector<MsiMessage>& out) {
    for (uint16_t v = 0; v < entries_.size(); ++v) {
        if (pending(v) && !masked(v)) {
            set_pending(v, false);
            out.push_back(message(v));
        }
    }
}

}  // namespace vfsdax::pci
