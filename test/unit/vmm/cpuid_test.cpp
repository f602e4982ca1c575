// SPDX-License-Identifier: Apache-2.0
// Per-vCPU CPUID: APIC ids in every leaf that reports one, the hypervisor and TSC-deadline bits,
// and when the TSC-deadline bit is offered.
#include "cpuid.hpp"

#include <catch2/catch.hpp>
#include <vector>

using namespace vfsdax::vmm;

namespace {

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t value) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.eax = e.ebx = e.ecx = e.edx = value;
    return e;
}

}  // namespace

TEST_CASE("each vCPU's leaves carry its APIC id; leaf 1 gets the hypervisor bit") {
    std::vector<kvm_cpuid_entry2> entries{leaf(1, 0x1234), leaf(0xb, 0), leaf(0x1f, 0),
                                          leaf(0x8000001e, 0), leaf(7, 0x55)};
    set_cpuid_for_vcpu(entries, {.apic_id = 3, .cpus = 4});
    CHECK(entries[0].ebx == (0x1234u | 3u << 24 | 4u << 16));
    CHECK((entries[0].ecx & kCpuidHypervisorBit) != 0);
    CHECK((entries[0].ecx & kCpuidTscDeadlineBit) == 0);
    CHECK(entries[1].edx == 3);
    CHECK(entries[2].edx == 3);
    CHECK(entries[3].eax == 3);
    CHECK(entries[4].eax == 0x55);  // other leaves untouched
    CHECK(entries[4].ecx == 0x55);
}

TEST_CASE("the TSC-deadline bit is set when asked") {
    std::vector<kvm_cpuid_entry2> entries{leaf(1, 0)};
    set_cpuid_for_vcpu(entries, {.apic_id = 0, .cpus = 1, .tsc_deadline_timer = true});
    CHECK((entries[0].ecx & kCpuidTscDeadlineBit) != 0);
}

TEST_CASE("auto offers the TSC-deadline timer where KVM emulates it, except under QEMU TCG") {
    const TscDeadlineFacts kvm{.kvm_emulates = true, .host_is_qemu_tcg = false};
    const TscDeadlineFacts tcg{.kvm_emulates = true, .host_is_qemu_tcg = true};
    const TscDeadlineFacts old_kvm{.kvm_emulates = false, .host_is_qemu_tcg = false};
    CHECK(resolve_tsc_deadline(TscDeadline::Auto, kvm) == true);
    CHECK(resolve_tsc_deadline(TscDeadline::Auto, tcg) == false);
    CHECK(resolve_tsc_deadline(TscDeadline::Auto, old_kvm) == false);
    CHECK(resolve_tsc_deadline(TscDeadline::On, tcg) == true);
    CHECK(resolve_tsc_deadline(TscDeadline::Off, kvm) == false);
    const auto refused = resolve_tsc_deadline(TscDeadline::On, old_kvm);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == "the TSC-deadline timer: KVM lacks KVM_CAP_TSC_DEADLINE_TIMER");
}

TEST_CASE("the physical address width comes from leaf 0x80000008, 36 bits without it") {
    CHECK(physical_address_bits({leaf(1, 0)}) == 36);
    kvm_cpuid_entry2 widths = leaf(0x80000008, 0);
    widths.eax = 0x3027;  // 39 physical, 48 linear bits
    CHECK(physical_address_bits({leaf(1, 0), widths}) == 39);
}
