// SPDX-License-Identifier: Apache-2.0
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

TEST_CASE("the interrupt line shows a device vector requested behind one left in service") {
    kvm_mp_state mp{KVM_MP_STATE_HALTED};
    kvm_regs regs{};
    regs.rflags = 0x202;
    kvm_vcpu_events events{};
    kvm_lapic_state lapic{};
    const auto set_bit = [&lapic](uint32_t base, uint32_t vector) {
        lapic.regs[base + (vector / 32) * 0x10 + (vector % 32) / 8] |= char(1 << (vector % 8));
    };
    set_bit(0x100, 0x22);  // in service
    set_bit(0x200, 0x23);  // requested
    set_bit(0x200, 0xec);
    lapic.regs[0x80] = 0x10;
    CHECK(format_interrupt_state(mp, regs, events, lapic) ==
          "halted, IF 1, interrupt being injected: none, NMI pending 0, LAPIC TPR 0x10, in "
          "service: 0x22, requested: 0x23 0xec");

    mp.mp_state = KVM_MP_STATE_RUNNABLE;
    regs.rflags = 0x2;
    events.interrupt.injected = 1;
    events.interrupt.nr = 0x41;
    events.nmi.pending = 1;
    lapic = {};
    CHECK(format_interrupt_state(mp, regs, events, lapic) ==
          "runnable, IF 0, interrupt being injected: vector 0x41, NMI pending 1, LAPIC TPR "
          "0x00, in service: none, requested: none");
}
