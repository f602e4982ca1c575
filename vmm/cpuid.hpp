// SPDX-License-Identifier: Apache-2.0
// Per-vCPU CPUID: KVM's supported set with this vCPU's APIC id in every leaf that reports it.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

inline constexpr uint32_t kCpuidHypervisorBit = 1u << 31;   // leaf 1 ECX
inline constexpr uint32_t kCpuidTscDeadlineBit = 1u << 24;  // leaf 1 ECX

struct VcpuCpuid {
    uint32_t apic_id = 0;
    unsigned cpus = 1;
    bool tsc_deadline_timer = false;
};

// Leaf 1 EBX[31:24] (initial APIC id) and EBX[23:16] (logical processors, at least `cpus`),
// leaves 0xB/0x1F EDX (x2APIC id) and 0x8000001E EAX (extended APIC id); the hypervisor bit and,
// when asked, the TSC-deadline bit in leaf 1 ECX.
void set_cpuid_for_vcpu(std::vector<kvm_cpuid_entry2>& entries, const VcpuCpuid& vcpu);

// Whether guests see the LAPIC's TSC-deadline timer mode. KVM's in-kernel LAPIC emulates it
// (KVM_CAP_TSC_DEADLINE_TIMER) but KVM_GET_SUPPORTED_CPUID before Linux 6.14 leaves the bit to
// the VMM. Without it Linux calibrates the LAPIC timer against the PIT, which fails when the
// VMM itself runs under emulation ("APIC timer disabled due to verification failure") and
// leaves the guest ticking through the PIT: boots take several times longer there.
enum class TscDeadline { Auto, On, Off };

struct TscDeadlineFacts {
    bool kvm_emulates = false;  // KVM_CAP_TSC_DEADLINE_TIMER
    bool host_is_qemu_tcg = false;
};

// Auto means on, except where this VMM runs inside a QEMU TCG guest: there, a guest with the
// bit triple-faulted mid-run (once in the few runs made), which none without it did; the cause
// is not known (QEMU-KVM's guests in the same TCG guest use the bit without trouble).
// On without KVM's support is an error that says so.
std::expected<bool, std::string> resolve_tsc_deadline(TscDeadline wanted,
                                                      const TscDeadlineFacts& facts);

// The guest's physical address width (MAXPHYADDR): leaf 0x80000008 EAX[7:0], or 36 without
// that leaf, as the SDM defines it. Nothing may be placed at or above 2^bits.
unsigned physical_address_bits(const std::vector<kvm_cpuid_entry2>& entries);

// This process's own CPU: the hypervisor vendor leaf reads "TCGTCGTCGTCG" under QEMU's TCG.
bool running_under_qemu_tcg();

}  // namespace vfsdax::vmm
