// SPDX-License-Identifier: Apache-2.0
// The Intel MultiProcessor table (spec 1.4) that lets Linux find every vCPU without ACPI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pci_host.hpp"

namespace vfsdax::vmm {

// MP spec 1.4 layout sizes. The formats are not in any uapi header, so they are written out
// byte by byte from the specification instead of declared as structs.
inline constexpr std::size_t kMpFloatingSize = 16;
inline constexpr std::size_t kMpHeaderSize = 44;
inline constexpr std::size_t kMpProcessorSize = 20;
inline constexpr std::size_t kMpSmallEntrySize = 8;  // bus, I/O APIC, interrupt entries
inline constexpr unsigned kMpIsaIrqs = 16;
inline constexpr unsigned kMpPciSlots = PciHostBridge::kSlots - 1;  // slot 0: the host bridge
inline constexpr uint8_t kMpPciBus = 0;  // = Linux's PCI bus number, which it looks up
inline constexpr uint8_t kMpIsaBus = 1;

// The floating pointer followed by the configuration table, ready to copy to guest address
// `base`: one processor entry per vCPU (APIC id = index, vCPU 0 the bootstrap processor), a
// PCI and an ISA bus, the I/O APIC (id = cpus), ISA IRQs 0-15 wired to I/O APIC pins 0-15
// the way KVM's default routing wires them, each PCI slot's INTA# to its pin
// (layout::pci_intx_gsi, level and active low), and LINT0/LINT1 as ExtINT/NMI. Every slot is
// described, present or not: the routing is the board's, and the table is written before
// devices are plugged.
std::vector<std::byte> build_mptable(uint32_t base, unsigned cpus);

}  // namespace vfsdax::vmm
