// Per-vCPU CPUID: KVM's supported set with this vCPU's APIC id in every leaf that reports it.
#pragma once

#include <cstdint>
#include <vector>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

inline constexpr uint32_t kCpuidHypervisorBit = 1u << 31;  // leaf 1 ECX

// Leaf 1 EBX[31:24] (initial APIC id) and EBX[23:16] (logical processors, at least `cpus`),
// leaves 0xB/0x1F EDX (x2APIC id) and 0x8000001E EAX (extended APIC id); the hypervisor bit.
void set_cpuid_for_vcpu(std::vector<kvm_cpuid_entry2>& entries, uint32_t apic_id, unsigned cpus);

}  // namespace vfsdax::vmm
