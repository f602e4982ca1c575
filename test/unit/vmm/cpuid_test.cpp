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

TEST_CASE("auto offers the TSC-deadline timer wherever KVM emulates it") {
    const TscDeadlineFacts kvm{.kvm_emulates = true};
    const TscDeadlineFacts old_kvm{.kvm_emulates = false};
    CHECK(resolve_tsc_deadline(TscDeadline::Auto, kvm) == true);
    CHECK(resolve_tsc_deadline(TscDeadline::Auto, old_kvm) == false);
    CHECK(resolve_tsc_deadline(TscDeadline::On, kvm) == true);
    CHECK(resolve_tsc_deadline(TscDeadline::Off, kvm) == false);
    const auto refused = resolve_tsc_deadline(TscDeadline::On, old_kvm);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == "the TSC-deadline timer: KVM lacks KVM_CAP_TSC_DEADLINE_TIMER");
}

namespace {

kvm_cpuid_entry2 sub_leaf(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx,
                          uint32_t ecx, uint32_t edx) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.eax = eax;
    e.ebx = ebx;
    e.ecx = ecx;
    e.edx = edx;
    return e;
}

const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                             uint32_t index) {
    for (const kvm_cpuid_entry2& e : entries)
        if (e.function == function && e.index == index) return &e;
    return nullptr;
}

// Leaf 0xD as KVM reported it nested under QEMU TCG: x87, SSE, AVX (256 bytes at 576) and PKRU
// (8 bytes at 2688) offered, EBX the size for an XCR0 of x87|SSE. Plus a sub-leaf for
// component 5 (AVX-512 opmask), which XCR0 does not offer, and XCR0 bit 3 (MPX BNDREGS)
// offered without a sub-leaf.
std::vector<kvm_cpuid_entry2> nested_tcg_leaves() {
    return {sub_leaf(1, 0, 0x00a00f11, 0, 0x1c802201 | 1u << 26, 0),
            sub_leaf(7, 0, 0, 1u << 5 | 1u << 16 | 1u << 0, 1u << 3 | 1u << 2, 1u << 23),
            sub_leaf(7, 1, 1u << 4 | 1u << 7, 0, 0, 0),
            sub_leaf(0xd, 0, 0x20f, 0x240, 0xa88, 0),
            sub_leaf(0xd, 1, 0x7, 0x240, 0, 0),
            sub_leaf(0xd, 2, 0x100, 0x240, 0, 0),
            sub_leaf(0xd, 5, 0x40, 0x440, 0, 0),
            sub_leaf(0xd, 9, 0x8, 0xa80, 0, 0),
            sub_leaf(0x80000001, 0, 0, 0, 1u << 11 | 1u << 16 | 1u << 0, 0)};
}

}  // namespace

TEST_CASE("leaf 0xD describes exactly the XSAVE components offered") {
    auto entries = nested_tcg_leaves();
    normalize_cpuid(entries, {.xsave = true});
    const kvm_cpuid_entry2* main = find(entries, 0xd, 0);
    REQUIRE(main);
    CHECK(main->eax == 0x207);  // bit 3 dropped: no sub-leaf says where it lives
    CHECK(main->ebx == 576);    // at reset XCR0 holds x87 only; KVM follows the guest's XCR0
    CHECK(main->ecx == 0xa88);  // PKRU ends last: 2688 + 8
    CHECK(find(entries, 0xd, 1)->ebx == 576);
    CHECK(find(entries, 0xd, 2));
    CHECK(find(entries, 0xd, 9));
    CHECK_FALSE(find(entries, 0xd, 5));                 // a component neither XCR0 nor XSS offers
    CHECK((find(entries, 1, 0)->ecx & 1u << 26) != 0);  // XSAVE stays
}

TEST_CASE("leaf 0xD's full size is the component ending last, never below the legacy area") {
    std::vector<kvm_cpuid_entry2> entries{sub_leaf(0xd, 0, 0x3, 0x240, 0, 0)};
    normalize_cpuid(entries, {.xsave = true});
    CHECK(entries[0].ecx == 576);
    // Out of order: AVX-512's Hi16_ZMM (bit 7) ends at 2688, PKRU (bit 9) before it here.
    entries = {sub_leaf(0xd, 0, 0x287, 0x240, 0, 0), sub_leaf(0xd, 2, 0x100, 0x240, 0, 0),
               sub_leaf(0xd, 7, 0x400, 0x680, 0, 0), sub_leaf(0xd, 9, 0x8, 0x600, 0, 0)};
    normalize_cpuid(entries, {.xsave = true});
    CHECK(find(entries, 0xd, 0)->ecx == 0x680 + 0x400);
}

TEST_CASE("without XSAVE, leaf 0xD goes and so does every feature that needs it") {
    auto entries = nested_tcg_leaves();
    normalize_cpuid(entries, {.xsave = false});
    for (const kvm_cpuid_entry2& e : entries) CHECK(e.function != 0xd);
    const kvm_cpuid_entry2* l1 = find(entries, 1, 0);
    CHECK((l1->ecx & (1u << 26 | 1u << 27 | 1u << 28 | 1u << 29 | 1u << 12)) == 0);
    CHECK((l1->ecx & 0x00802201) == 0x00802201);  // SSE3, SSSE3, SSE4.2... stay
    const kvm_cpuid_entry2* l7 = find(entries, 7, 0);
    CHECK(l7->ebx == 1u << 0);                            // AVX2 and AVX512F gone, FSGSBASE stays
    CHECK(l7->ecx == 1u << 2);                            // PKU gone, UMIP stays
    CHECK(l7->edx == 0);                                  // AVX512_FP16 gone
    CHECK(find(entries, 7, 1)->eax == 1u << 7);           // AVX_VNNI gone
    CHECK(find(entries, 0x80000001, 0)->ecx == 1u << 0);  // XOP and FMA4 gone
}

TEST_CASE("XSAVE is hidden only where this VMM runs under QEMU TCG") {
    CHECK(cpuid_policy(false).xsave);
    CHECK_FALSE(cpuid_policy(true).xsave);
}

TEST_CASE("the physical address width comes from leaf 0x80000008, 36 bits without it") {
    CHECK(physical_address_bits({leaf(1, 0)}) == 36);
    kvm_cpuid_entry2 widths = leaf(0x80000008, 0);
    widths.eax = 0x3027;  // 39 physical, 48 linear bits
    CHECK(physical_address_bits({leaf(1, 0), widths}) == 39);
}
