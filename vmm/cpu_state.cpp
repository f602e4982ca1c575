// SPDX-License-Identifier: Apache-2.0
// One-line vCPU summaries: registers for fatal exits, interrupts for stuck guests.
#include "cpu_state.hpp"

#include <asm/processor-flags.h>
#include <fmt/format.h>

#include <algorithm>
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

namespace {

constexpr uint32_t kApicTpr = 0x80, kApicIsr = 0x100, kApicIrr = 0x200;

// The highest vector set in one of the APIC's vector sets, or 0.
uint32_t highest_vector(const kvm_lapic_state& lapic, uint32_t base) {
    for (uint32_t reg = 8; reg-- > 0;) {
        if (const uint32_t bits = get_apic_reg(lapic, base + reg * 0x10); bits != 0)
            return reg * 32 + 31 - static_cast<uint32_t>(std::countl_zero(bits));
    }
    return 0;
}

}  // namespace

std::string format_interrupt_state(const InterruptSnapshot& s) {
    const std::string held =
        s.events.interrupt.injected ? fmt::format("vector {:#04x}", s.events.interrupt.nr) : "none";
    return fmt::format(
        "{} at rip {:#x} (ring {}), IF {}, interrupt shadow {}, interrupt being injected: {}, NMI "
        "pending {}, NMI masked {}, LAPIC TPR {:#04x}, in service: {}, requested: {}",
        mp_state_name(s.mp.mp_state), s.regs.rip, s.sregs.cs.selector & 3,
        (s.regs.rflags & X86_EFLAGS_IF) ? 1 : 0, s.events.interrupt.shadow ? 1 : 0, held,
        s.events.nmi.pending, s.events.nmi.masked, get_apic_reg(s.lapic, kApicTpr) & 0xff,
        apic_vectors(s.lapic, kApicIsr), apic_vectors(s.lapic, kApicIrr));
}

bool is_parked(const InterruptSnapshot& s) {
    switch (s.mp.mp_state) {
        case KVM_MP_STATE_UNINITIALIZED:
        case KVM_MP_STATE_INIT_RECEIVED:
            return true;
        case KVM_MP_STATE_HALTED:
            return (s.regs.rflags & X86_EFLAGS_IF) == 0;
        default:
            return false;
    }
}

uint32_t deliverable_vector(const InterruptSnapshot& s) {
    if (!(s.regs.rflags & X86_EFLAGS_IF) || s.events.interrupt.shadow ||
        s.events.interrupt.injected)
        return 0;
    const uint32_t requested = highest_vector(s.lapic, kApicIrr);
    const uint32_t blocking =
        std::max(get_apic_reg(s.lapic, kApicTpr) & 0xf0, highest_vector(s.lapic, kApicIsr) & 0xf0);
    return (requested & 0xf0) > blocking ? requested : 0;
}

}  // namespace vfsdax::vmm
