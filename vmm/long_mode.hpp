// SPDX-License-Identifier: Apache-2.0
// The GDT and identity page tables a vCPU needs to enter Linux's 64-bit entry point.
#pragma once

#include <cstdint>
#include <expected>

#include "vfsdax/memory/guest_memory.hpp"

namespace vfsdax::vmm {

// Boot protocol: CS = __BOOT_CS (0x10), DS/ES/SS = __BOOT_DS (0x18), both 4 GiB flat.
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
// VMX refuses to enter a guest without a usable task register.
inline constexpr uint16_t kBootTssSelector = 0x20;

inline constexpr uint64_t kGdtCode64 = 0x00af9b000000ffff;  // L=1, P, DPL0, exec/read, 4 GiB
inline constexpr uint64_t kGdtData = 0x00cf93000000ffff;    // P, DPL0, read/write, 4 GiB
inline constexpr uint64_t kGdtTss = 0x00008b0000000067;     // busy 64-bit TSS, limit 0x67
inline constexpr unsigned kGdtEntries = 5;

// Page-table entry bits.
inline constexpr uint64_t kPtePresent = 1, kPteWritable = 2, kPteHuge = 0x80;

// Writes the GDT at layout::kGdt and page tables at layout::kPml4.. that identity-map
// the first layout::kIdentityMapped bytes with 2 MiB pages.
std::expected<void, MemoryError> write_long_mode_tables(const GuestMemory& memory);

}  // namespace vfsdax::vmm
