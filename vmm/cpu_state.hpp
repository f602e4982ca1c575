// SPDX-License-Identifier: Apache-2.0
// Describes a vCPU's registers, or its interrupt state, in one line.
#pragma once

#include <string>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

// rip, rsp, rflags, the control registers, EFER, and CS/SS (selector, base, attributes in the
// order KVM keeps them): what tells where a guest died and in which mode.
std::string format_cpu_state(const kvm_regs& regs, const kvm_sregs& sregs);

// The 32-bit local APIC register at `offset` in KVM's copy of the register page.
uint32_t get_apic_reg(const kvm_lapic_state& lapic, uint32_t offset);

// What one vCPU, outside KVM_RUN, says about its interrupts.
struct InterruptSnapshot {
    kvm_mp_state mp{};
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_vcpu_events events{};
    kvm_lapic_state lapic{};
};

// Where the vCPU's interrupts stand, for a report on a guest that looks stuck: run state,
// where it runs, IF and the interrupt shadow, an event KVM holds for injection, NMIs, and the
// local APIC's TPR, in-service and requested vectors. A device interrupt requested but never
// taken, or a vector left in service (no EOI) above it, shows here.
std::string format_interrupt_state(const InterruptSnapshot& s);

// Whether the vCPU sits in HLT with interrupts disabled, where only an NMI or INIT could wake
// it (how Linux parks every CPU when it halts or powers off without ACPI), or was never
// started by the guest.
bool is_parked(const InterruptSnapshot& s);

// The highest requested vector the vCPU would take as soon as it runs (interrupts on, no
// interrupt shadow, nothing held for injection, its priority class above the TPR's and
// every in-service vector's), or 0. KVM injects such a vector on its next guest entry: one
// still requested after many entries was never delivered.
uint32_t deliverable_vector(const InterruptSnapshot& s);

}  // namespace vfsdax::vmm
