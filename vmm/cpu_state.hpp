// SPDX-License-Identifier: Apache-2.0
// Describes a vCPU's registers, or its interrupt state, in one line.
#pragma once

#include <string>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

// rip, rsp, rflags, the control registers, EFER, and CS/SS (selector, base, attributes in the
// order KVM keeps them): what tells where a guest died and in which mode.
std::string format_cpu_state(const kvm_regs& regs, const kvm_sregs& sregs);

// Where the vCPU's interrupts stand, for a report on a guest that looks stuck: run state, IF,
// an event KVM holds for injection, and the local APIC's TPR, in-service and requested
// vectors. A device interrupt requested but never taken, or a vector left in service (no
// EOI) above it, shows here.
// The 32-bit local APIC register at `offset` in KVM's copy of the register page.
uint32_t get_apic_reg(const kvm_lapic_state& lapic, uint32_t offset);

std::string format_interrupt_state(const kvm_mp_state& mp, const kvm_regs& regs,
                                   const kvm_vcpu_events& events, const kvm_lapic_state& lapic);

}  // namespace vfsdax::vmm
