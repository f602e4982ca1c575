// One-line vCPU register summary for fatal exits.
#include "cpu_state.hpp"

#include <fmt/format.h>

namespace vfsdax::vmm {
namespace {

std::string segment(const char* name, const kvm_segment& s) {
    return fmt::format("{}={:#x} (base {:#x}, type {:#x}, dpl {}, l {}, db {}, present {})", name,
                       s.selector, s.base, s.type, s.dpl, s.l, s.db, s.present);
}

}  // namespace

std::string format_cpu_state(const kvm_regs& regs, const kvm_sregs& sregs) {
    return fmt::format(
        "rip={:#x} rsp={:#x} rflags={:#x} cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} "
        "{} {}",
        regs.rip, regs.rsp, regs.rflags, sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer,
        segment("cs", sregs.cs), segment("ss", sregs.ss));
}

}  // namespace vfsdax::vmm
