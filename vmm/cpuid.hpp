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
};

// Auto means on wherever KVM emulates it, as QEMU offers it (`-cpu host`). It used to be off
// inside a QEMU TCG guest, where one guest with it had triple-faulted; that was before the
// XSAVE state was taken away there (cpuid_policy), which corrupts FPU state in such guests.
// On without KVM's support is an error that says so.
std::expected<bool, std::string> resolve_tsc_deadline(TscDeadline wanted,
                                                      const TscDeadlineFacts& facts);

// What every vCPU's CPUID keeps of KVM_GET_SUPPORTED_CPUID, the same for all vCPUs.
struct CpuidPolicy {
    // XSAVE and everything whose state lives in an XSAVE component (the AVX and AVX-512
    // families, MPX, PKU, CET, AMX, XOP/FMA4); off, the guest saves its FPU with FXSAVE.
    bool xsave = true;
};

// The policy for this host. Inside a QEMU TCG guest (nested, as the e2e rig runs) XSAVE is
// off. QEMU's TCG before 8.2 (Debian 12 has 7.2) does not check SVM's XSETBV intercept
// (QEMU 8.2: "target/i386: check intercept for XSETBV"): it runs a nested guest's XSETBV
// itself instead of exiting to the KVM below us, so that KVM keeps the guest's XCR0 at its
// reset value, x87 only: CPUID 0xD.0 EBX stays 576 and every such guest logs "XSAVE
// consistency problem: size 2696 != kernel_size 576" (QEMU-KVM's too, in the same L1), and KVM
// loads that XCR0 again at each VM entry, after which the guest's XSAVE/XRSTOR leave SSE/AVX
// state out. The QEMU version cannot be told from inside, so any QEMU TCG host gets this.
CpuidPolicy cpuid_policy(bool host_is_qemu_tcg);

// VM-wide normalisation, before set_cpuid_for_vcpu:
// - with xsave: leaf 0xD describes exactly the XCR0 (sub-leaf 0 EDX:EAX) and XSS (sub-leaf 1
//   EDX:ECX) components KVM offers and has a sub-leaf for: sub-leaf 0 ECX = the largest
//   offset + size among them (from their sub-leaves), EBX = sub-leaf 1 EBX = 576, the size at
//   reset (legacy area and header; KVM recomputes both as the guest sets XCR0/XSS); sub-leaves
//   of components not offered are dropped;
// - without: the features above are cleared and leaf 0xD is dropped.
void normalize_cpuid(std::vector<kvm_cpuid_entry2>& entries, const CpuidPolicy& policy);

// The guest's physical address width (MAXPHYADDR): leaf 0x80000008 EAX[7:0], or 36 without
// that leaf, as the SDM defines it. Nothing may be placed at or above 2^bits.
unsigned physical_address_bits(const std::vector<kvm_cpuid_entry2>& entries);

// This process's own CPU: the hypervisor vendor leaf reads "TCGTCGTCGTCG" under QEMU's TCG.
bool running_under_qemu_tcg();

}  // namespace vfsdax::vmm
