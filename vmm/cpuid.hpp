// Per-vCPU CPUID: KVM's supported set with this vCPU's APIC id in every leaf that reports it.
#pragma once

#include <cstdint>
#include <vector>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

inline constexpr uint32_t kCpuidHypervisorBit = 1u << 31;   // leaf 1 ECX
inline constexpr uint32_t kCpuidTscDeadlineBit = 1u << 24;  // leaf 1 ECX

struct VcpuCpuid {
    uint32_t apic_id = 0;
    unsigned cpus = 1;
    // KVM_CAP_TSC_DEADLINE_TIMER: the in-kernel LAPIC emulates the TSC-deadline mode, but
    // KVM_GET_SUPPORTED_CPUID (before Linux 6.14) leaves the bit to the VMM. Without it the
    // guest calibrates the LAPIC timer against the PIT, which fails under nested TCG
    // ("APIC timer disabled due to verification failure").
    bool tsc_deadline_timer = false;
};

// Leaf 1 EBX[31:24] (initial APIC id) and EBX[23:16] (logical processors, at least `cpus`),
// leaves 0xB/0x1F EDX (x2APIC id) and 0x8000001E EAX (extended APIC id); the hypervisor bit and
// the TSC-deadline bit in leaf 1 ECX.
void set_cpuid_for_vcpu(std::vector<kvm_cpuid_entry2>& entries, const VcpuCpuid& vcpu);

}  // namespace vfsdax::vmm
