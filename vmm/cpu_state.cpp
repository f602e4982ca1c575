// SPDX-License-Identifier: Apache-2.0
// One-line vCPU summaries: registers for fatal exits, interrupts for stuck guests.
#include "cpu_state.hpp"

#include <asm/processor-flags.h>
#include <fmt/format.h>

#include <bit>
#include <cstring>

namespace vfsdax::vmm {
namespace {

std::string segment(const char* name, const kvm_segment& s) {
    return fmt::format("{}={:#x} (base {:#x}, type {:#x}, dpl {}, l {}, db {}, present {})", name,
                       s.selector, s.base, s.type, s.dpl, s.l, s.db, s.present);
}

const char* mp_state_name(uint32_t state) {
    switch (state) {
        case KVM_MP_STATE_RUNNABLE:
            return "runnable";
        case KVM_MP_STATE_UNINITIALIZED:
            return "not started";
        case KVM_MP_STATE_INIT_RECEIVED:
            return "INIT received";
        case KVM_MP_STATE_HALTED:
            return "halted";
        case KVM_MP_STATE_SIPI_RECEIVED:
            return "SIPI received";
        default:
            return "other";
    }
}

// One of the APIC's 256-bit vector sets (ISR at 0x100, IRR at 0x200): eight 32-bit registers
// 16 bytes apart, listed as vectors.
std::string apic_vectors(const kvm_lapic_state& lapic, uint32_t base) {
    std::string list;
    for (uint32_t reg = 0; reg < 8; ++reg) {
        for (uint32_t bits = get_apic_reg(lapic, base + reg * 0x10); bits != 0; bits &= bits - 1) {
            const uint32_t vector = reg * 32 + static_cast<uint32_t>(std::countr_zero(bits));
            list += fmt::format("{}{:#04x}", list.empty() ? "" : " ", vector);
        }
    }
    return list.empty() ? "none" : list;
}

}  // namespace

std::string format_cpu_state(const kvm_regs& regs, const kvm_sregs& sregs) {
    return fmt::format(
        "rip={:#x} rsp={:#x} rflags={:#x} cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} "
        "{} {}",
        regs.rip, regs.rsp, regs.rflags, sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer,
        segment("cs", sregs.cs), segment("ss", sregs.ss));
}

uint32_t get_apic_reg(const kvm_lapic_state& lapic, uint32_t offset) {
    uint32_t value;
    std::memcpy(&value, lapic.regs + offset, sizeof value);
    return value;
}

std::string format_interrupt_state(const kvm_mp_state& mp, const kvm_regs& regs,
                                   const kvm_vcpu_events& events, const kvm_lapic_state& lapic) {
    constexpr uint32_t kApicTpr = 0x80, kApicIsr = 0x100, kApicIrr = 0x200;
    const uint32_t tpr = get_apic_reg(lapic, kApicTpr);
    const std::string held =
        events.interrupt.injected ? fmt::format("vector {:#04x}", events.interrupt.nr) : "none";
    return fmt::format(
        "{}, IF {}, interrupt being injected: {}, NMI pending {}, LAPIC TPR {:#04x}, in service: "
        "{}, requested: {}",
        mp_state_name(mp.mp_state), (regs.rflags & X86_EFLAGS_IF) ? 1 : 0, held, events.nmi.pending,
        tpr & 0xff, apic_vectors(lapic, kApicIsr), apic_vectors(lapic, kApicIrr));
}

}  // namespace vfsdax::vmm
