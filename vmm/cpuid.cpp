// SPDX-License-Identifier: Apache-2.0
// CPUID adjustments per vCPU, and the TSC-deadline decision.
#include "cpuid.hpp"

#include <cpuid.h>

#include <cstring>

namespace vfsdax::vmm {

void set_cpuid_for_vcpu(std::vector<kvm_cpuid_entry2>& entries, const VcpuCpuid& vcpu) {
    for (kvm_cpuid_entry2& e : entries) {
        switch (e.function) {
            case 1:
                e.ebx = (e.ebx & 0x0000ffff) | (vcpu.apic_id << 24) | ((vcpu.cpus & 0xff) << 16);
                e.ecx |= kCpuidHypervisorBit;
                if (vcpu.tsc_deadline_timer) e.ecx |= kCpuidTscDeadlineBit;
                break;
            case 0xb:
            case 0x1f:
                e.edx = vcpu.apic_id;
                break;
            case 0x8000001e:
                e.eax = vcpu.apic_id;
                break;
            default:
                break;
        }
    }
}

std::expected<bool, std::string> resolve_tsc_deadline(TscDeadline wanted,
                                                      const TscDeadlineFacts& facts) {
    switch (wanted) {
        case TscDeadline::Off:
            return false;
        case TscDeadline::On:
            if (!facts.kvm_emulates)
                return std::unexpected(
                    "the TSC-deadline timer: KVM lacks KVM_CAP_TSC_DEADLINE_TIMER");
            return true;
        case TscDeadline::Auto:
            break;
    }
    return facts.kvm_emulates && !facts.host_is_qemu_tcg;
}

unsigned physical_address_bits(const std::vector<kvm_cpuid_entry2>& entries) {
    constexpr unsigned kWithoutLeaf = 36;
    for (const kvm_cpuid_entry2& e : entries) {
        if (e.function == 0x80000008 && (e.eax & 0xff) != 0) return e.eax & 0xff;
    }
    return kWithoutLeaf;
}

bool running_under_qemu_tcg() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!(ecx & kCpuidHypervisorBit)) return false;
    __cpuid(0x40000000, eax, ebx, ecx, edx);
    char vendor[12];
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &ecx, 4);
    std::memcpy(vendor + 8, &edx, 4);
    return std::memcmp(vendor, "TCGTCGTCGTCG", sizeof vendor) == 0;
}

}  // namespace vfsdax::vmm
