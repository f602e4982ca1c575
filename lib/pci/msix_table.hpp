// SPDX-License-Identifier: Apache-2.0
// MsixTable: the MSI-X table, pending bit array and masking rules of one PCI function.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace vfsdax::pci {

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
};

// Not thread-safe (the interrupt router serialises it). Messages that become deliverable are
// appended to `out` rather than sent, so the table has no opinion on how they travel.
class MsixTable {
public:
    explicit MsixTable(uint16_t vectors);

    uint16_t size() const { return static_cast<uint16_t>(entries_.size()); }
    uint64_t table_bytes() const { return entries_.size() * kEntrySize; }
    uint64_t pba_bytes() const { return pending_.size() * sizeof(uint64_t); }

    // Dword accesses at 4-byte aligned offsets within the table or PBA; others read 0.
    uint32_t read_table(uint64_t offset) const;
    void write_table(uint64_t offset, uint32_t value, std::vector<MsiMessage>& out);
    uint32_t read_pba(uint64_t offset) const;

    // The Message Control enable and function mask bits.
    void set_control(bool enabled, bool function_masked, std::vector<MsiMessage>& out);
    bool enabled() const { return enabled_; }
    bool function_masked() const { return function_masked_; }
    // Vectors whose message waits for an unmask.
    unsigned pending_count() const;

    // The message to send for `vector` now, or none: vector out of range, or masked (then the
    // pending bit is set and the message leaves on unmask).
    std::optional<MsiMessage> fire(uint16_t vector);
    void clear_pending();

private:
    static constexpr uint64_t kEntrySize = 16;

    struct Entry {
        uint32_t address_low = 0;
        uint32_t address_high = 0;
        uint32_t data = 0;
        uint32_t control = 1;  // vector masked after reset (PCI 3.0, 6.8.2.9)
    };

    bool masked(uint16_t vector) const;
    bool pending(uint16_t vector) const;
    void set_pending(uint16_t vector, bool value);
    MsiMessage message(uint16_t vector) const;
    void deliver_unmasked_pending(std::vector<MsiMessage>& out);

    std::vector<Entry> entries_;
    std::vector<uint64_t> pending_;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace vfsdax::pci
