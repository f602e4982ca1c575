// SPDX-License-Identifier: Apache-2.0
// CPUID adjustments per vCPU, and the TSC-deadline decision.
#include "cpuid.hpp"

#include <cpuid.h>

#include <algorithm>
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
    return facts.kvm_emulates;
}

CpuidPolicy cpuid_policy(bool host_is_qemu_tcg) {
    return {.xsave = !host_is_qemu_tcg};
}

namespace {

constexpr uint32_t bit(unsigned n) {
    return 1u << n;
}

// Features whose state lives in an XSAVE component, or that need XSAVE enabled (VEX and EVEX
// encoded instructions need CR4.OSXSAVE and their XCR0 bits), by leaf and register.
// Leaf 1 ECX: FMA, XSAVE, OSXSAVE, AVX, F16C.
constexpr uint32_t kLeaf1EcxXsave = bit(12) | bit(26) | bit(27) | bit(28) | bit(29);
// Leaf 7.0 EBX: AVX2, MPX, AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL.
constexpr uint32_t kLeaf7EbxXsave = bit(5) | bit(14) | bit(16) | bit(17) | bit(21) | bit(26) |
                                    bit(27) | bit(28) | bit(30) | bit(31);
// Leaf 7.0 ECX: AVX512_VBMI, PKU, OSPKE, AVX512_VBMI2, CET_SS, VAES, VPCLMULQDQ, AVX512_VNNI,
// AVX512_BITALG, AVX512_VPOPCNTDQ.
constexpr uint32_t kLeaf7EcxXsave =
    bit(1) | bit(3) | bit(4) | bit(6) | bit(7) | bit(9) | bit(10) | bit(11) | bit(12) | bit(14);
// Leaf 7.0 EDX: AVX512_4VNNIW, AVX512_4FMAPS, AVX512_VP2INTERSECT, CET_IBT, AMX_BF16,
// AVX512_FP16, AMX_TILE, AMX_INT8.
constexpr uint32_t kLeaf7EdxXsave =
    bit(2) | bit(3) | bit(8) | bit(20) | bit(22) | bit(23) | bit(24) | bit(25);
// Leaf 7.1 EAX: AVX_VNNI, AVX512_BF16.
constexpr uint32_t kLeaf7s1EaxXsave = bit(4) | bit(5);
// Leaf 0x80000001 ECX (AMD): XOP, FMA4.
constexpr uint32_t kLeaf80000001EcxXsave = bit(11) | bit(16);

// The legacy area (512 bytes) and the XSAVE header (64): the size of an XSAVE area holding only
// x87 and SSE state, in either format.
constexpr uint32_t kXsaveLegacyAndHeader = 576;

void hide_xsave(std::vector<kvm_cpuid_entry2>& entries) {
    std::erase_if(entries, [](const kvm_cpuid_entry2& e) { return e.function == 0xd; });
    for (kvm_cpuid_entry2& e : entries) {
        if (e.function == 1) {
            e.ecx &= ~kLeaf1EcxXsave;
        } else if (e.function == 7 && e.index == 0) {
            e.ebx &= ~kLeaf7EbxXsave;
            e.ecx &= ~kLeaf7EcxXsave;
            e.edx &= ~kLeaf7EdxXsave;
        } else if (e.function == 7 && e.index == 1) {
            e.eax &= ~kLeaf7s1EaxXsave;
        } else if (e.function == 0x80000001) {
            e.ecx &= ~kLeaf80000001EcxXsave;
        }
    }
}

kvm_cpuid_entry2* find_leaf(std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                            uint32_t index) {
    for (kvm_cpuid_entry2& e : entries)
        if (e.function == function && e.index == index) return &e;
    return nullptr;
}

void normalize_xsave_leaf(std::vector<kvm_cpuid_entry2>& entries) {
    kvm_cpuid_entry2* main = find_leaf(entries, 0xd, 0);
    if (!main) return;
    kvm_cpuid_entry2* sub1 = find_leaf(entries, 0xd, 1);
    uint64_t xcr0 = main->eax | uint64_t{main->edx} << 32;
    uint64_t xss = sub1 ? (sub1->ecx | uint64_t{sub1->edx} << 32) : 0;
    // Components 0 and 1 (x87, SSE) live in the legacy area and have no sub-leaf of their own;
    // any other component is offered only with a sub-leaf that gives its size.
    uint32_t max_size = kXsaveLegacyAndHeader;
    for (unsigned i = 2; i < 64; ++i) {
        const uint64_t mask = uint64_t{1} << i;
        if (!((xcr0 | xss) & mask)) continue;
        const kvm_cpuid_entry2* sub = find_leaf(entries, 0xd, i);
        if (!sub || sub->eax == 0) {
            xcr0 &= ~mask;
            xss &= ~mask;
            continue;
        }
        // Only user (XCR0) components have a fixed offset in the standard format; sub-leaf 0
        // ECX is the standard-format size for all of them.
        if (xcr0 & mask) max_size = std::max(max_size, sub->ebx + sub->eax);
    }
    std::erase_if(entries, [xcr0, xss](const kvm_cpuid_entry2& e) {
        return e.function == 0xd && e.index >= 2 && e.index < 64 &&
               !((xcr0 | xss) & (uint64_t{1} << e.index));
    });
    main = find_leaf(entries, 0xd, 0);
    main->eax = static_cast<uint32_t>(xcr0);
    main->edx = static_cast<uint32_t>(xcr0 >> 32);
    main->ebx = kXsaveLegacyAndHeader;
    main->ecx = max_size;
    if ((sub1 = find_leaf(entries, 0xd, 1))) {
        sub1->ebx = kXsaveLegacyAndHeader;
        sub1->ecx = static_cast<uint32_t>(xss);
        sub1->edx = static_cast<uint32_t>(xss >> 32);
    }
}

}  // namespace

void normalize_cpuid(std::vector<kvm_cpuid_entry2>& entries, const CpuidPolicy& policy) {
    if (policy.xsave)
        normalize_xsave_leaf(entries);
    else
        hide_xsave(entries);
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
