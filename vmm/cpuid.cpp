// CPUID adjustments per vCPU.
#include "cpuid.hpp"

namespace vfsdax::vmm {

void set_cpuid_for_vcpu(std::vector<kvm_cpuid_entry2>& entries, uint32_t apic_id, unsigned cpus) {
    for (kvm_cpuid_entry2& e : entries) {
        switch (e.function) {
            case 1:
                e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) | ((cpus & 0xff) << 16);
                e.ecx |= kCpuidHypervisorBit;
                break;
            case 0xb:
            case 0x1f:
                e.edx = apic_id;
                break;
            case 0x8000001e:
                e.eax = apic_id;
                break;
            default:
                break;
        }
    }
}

}  // namespace vfsdax::vmm
