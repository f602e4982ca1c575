// Describes a vCPU's registers in one line, for the reason a fatal exit prints.
#pragma once

#include <string>

#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

// rip, rsp, rflags, the control registers, EFER, and CS/SS (selector, base, attributes in the
// order KVM keeps them): what tells where a guest died and in which mode.
std::string format_cpu_state(const kvm_regs& regs, const kvm_sregs& sregs);

}  // namespace vfsdax::vmm
