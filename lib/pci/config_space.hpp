// SPDX-License-Identifier: Apache-2.0
// ConfigSpace: a PCI type-0 configuration header and capability list, as bytes and write masks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "vfsdax/pci/bar_info.hpp"

namespace vfsdax::pci {

// Not thread-safe; the transport serialises access. Guest writes change only the bits the
// write mask allows, which is also what makes BAR sizing work: writing all ones to a BAR reads
// back the inverted size mask because its low address bits are read-only zeros.
class ConfigSpace {
public:
    static constexpr std::size_t kSize = 256;

    ConfigSpace();

    // Little-endian register access; the caller checked width (1, 2, 4) and bounds.
    uint32_t read(uint32_t offset, std::size_t width) const;
    void guest_write(uint32_t offset, std::size_t width, uint32_t value);

    // Setup and device-side updates, ignoring the write masks.
    void set(uint32_t offset, std::size_t width, uint32_t value);
    void set_writable(uint32_t offset, std::size_t width, uint32_t mask);

    // Appends a capability (body[0] is its id, body[1] is filled with the link) at a 4-byte
    // aligned offset after the standard header. None when it does not fit.
    std::optional<uint8_t> add_capability(std::span<const std::byte> body);

    // A 64-bit memory BAR on registers index and index + 1; size is a power of two >= 16.
    void define_bar64(uint8_t index, uint64_t size, bool prefetchable);
    // The BAR's state as decoded now (address only while memory space decoding is on).
    std::optional<BarInfo> bar(uint8_t index) const;

private:
    std::array<uint8_t, kSize> bytes_{};
    std::array<uint8_t, kSize> write_mask_{};
    std::array<uint64_t, 6> bar_size_{};  // 0: unused register, or the upper half of a 64-bit BAR
    uint8_t next_capability_ = 0x40;
    uint8_t last_capability_ = 0;
};

}  // namespace vfsdax::pci
