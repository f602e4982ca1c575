// The Intel MultiProcessor table (spec 1.4) that lets Linux find every vCPU without ACPI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vfsdax::vmm {

// MP spec 1.4 layout sizes. The formats are not in any uapi header, so they are written out
// byte by byte from the specification instead of declared as structs.
inline constexpr std::size_t kMpFloatingSize = 16;
inline constexpr std::size_t kMpHeaderSize = 44;
inline constexpr std::size_t kMpProcessorSize = 20;
inline constexpr std::size_t kMpSmallEntrySize = 8;  // bus, I/O APIC, interrupt entries
inline constexpr unsigned kMpIsaIrqs = 16;

// The floating pointer followed by the configuration table, ready to copy to guest address
// `base`: one processor entry per vCPU (APIC id = index, vCPU 0 the bootstrap processor), an
// ISA bus, the I/O APIC (id = cpus), ISA IRQs 0-15 wired to I/O APIC pins 0-15 the way KVM's
// default routing wires them, and LINT0/LINT1 as ExtINT/NMI.
std::vector<std::byte> build_mptable(uint32_t base, unsigned cpus);

}  // namespace vfsdax::vmm
