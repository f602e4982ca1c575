// format_cpu_state: the register line a fatal vCPU exit prints.
#include "cpu_state.hpp"

#include <catch2/catch.hpp>

using namespace vfsdax::vmm;

TEST_CASE("a fatal exit's register line names where and in which mode the guest was") {
    kvm_regs regs{};
    regs.rip = 0xffffffff81000000;
    regs.rsp = 0xffffc90000003f00;
    regs.rflags = 0x2;
    kvm_sregs sregs{};
    sregs.cr0 = 0x80050033;
    sregs.cr2 = 0xdead000;
    sregs.cr3 = 0x1000;
    sregs.cr4 = 0x20;
    sregs.efer = 0xd01;
    sregs.cs.selector = 0x10;
    sregs.cs.type = 0xb;
    sregs.cs.l = 1;
    sregs.cs.present = 1;
    sregs.ss.selector = 0x18;
    sregs.ss.type = 0x3;
    sregs.ss.db = 1;
    sregs.ss.present = 1;
    CHECK(format_cpu_state(regs, sregs) ==
          "rip=0xffffffff81000000 rsp=0xffffc90000003f00 rflags=0x2 cr0=0x80050033 "
          "cr2=0xdead000 cr3=0x1000 cr4=0x20 efer=0xd01 "
          "cs=0x10 (base 0x0, type 0xb, dpl 0, l 1, db 0, present 1) "
          "ss=0x18 (base 0x0, type 0x3, dpl 0, l 0, db 1, present 1)");
}
