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

namespace {

void set_vector(kvm_lapic_state& lapic, uint32_t base, uint32_t vector) {
    lapic.regs[base + (vector / 32) * 0x10 + (vector % 32) / 8] |= char(1 << (vector % 8));
}
constexpr uint32_t kIsr = 0x100, kIrr = 0x200;

}  // namespace

TEST_CASE("the interrupt line shows a device vector requested behind one left in service") {
    InterruptSnapshot s;
    s.mp.mp_state = KVM_MP_STATE_HALTED;
    s.regs.rflags = 0x202;
    s.regs.rip = 0xffffffff81a0b2c4;
    set_vector(s.lapic, kIsr, 0x22);
    set_vector(s.lapic, kIrr, 0x23);
    set_vector(s.lapic, kIrr, 0xec);
    s.lapic.regs[0x80] = 0x10;
    CHECK(format_interrupt_state(s) ==
          "halted at rip 0xffffffff81a0b2c4 (ring 0), IF 1, interrupt shadow 0, interrupt being "
          "injected: none, NMI pending 0, NMI masked 0, LAPIC TPR 0x10, in service: 0x22, "
          "requested: 0x23 0xec");

    s = {};
    s.mp.mp_state = KVM_MP_STATE_RUNNABLE;
    s.regs.rflags = 0x2;
    s.regs.rip = 0x401000;
    s.sregs.cs.selector = 0x33;
    s.events.interrupt.injected = 1;
    s.events.interrupt.nr = 0x41;
    s.events.interrupt.shadow = 1;
    s.events.nmi.pending = 1;
    s.events.nmi.masked = 1;
    CHECK(format_interrupt_state(s) ==
          "runnable at rip 0x401000 (ring 3), IF 0, interrupt shadow 1, interrupt being injected: "
          "vector 0x41, NMI pending 1, NMI masked 1, LAPIC TPR 0x00, in service: none, "
          "requested: none");
}

TEST_CASE("a requested vector is deliverable only above the TPR and in-service classes, with IF") {
    InterruptSnapshot s;
    s.mp.mp_state = KVM_MP_STATE_RUNNABLE;
    s.regs.rflags = 0x202;
    CHECK(deliverable_vector(s) == 0);  // nothing requested

    set_vector(s.lapic, kIrr, 0x21);
    set_vector(s.lapic, kIrr, 0xec);
    set_vector(s.lapic, kIrr, 0xfb);
    CHECK(deliverable_vector(s) == 0xfb);  // the highest one goes first

    s.lapic.regs[0x80] = char(0xf0);  // TPR class 15 holds back every vector up to 0xff
    CHECK(deliverable_vector(s) == 0);
    s.lapic.regs[0x80] = char(0xfa);  // only the class counts, not the low nibble
    CHECK(deliverable_vector(s) == 0);
    s.lapic.regs[0x80] = char(0xe0);
    CHECK(deliverable_vector(s) == 0xfb);

    set_vector(s.lapic, kIsr, 0xf2);  // a vector of the same class in service
    CHECK(deliverable_vector(s) == 0);

    s.lapic = {};
    set_vector(s.lapic, kIrr, 0x31);
    s.regs.rflags = 0x2;  // IF clear
    CHECK(deliverable_vector(s) == 0);
    s.regs.rflags = 0x202;
    s.events.interrupt.shadow = 1;  // right after STI or MOV SS
    CHECK(deliverable_vector(s) == 0);
    s.events.interrupt.shadow = 0;
    s.events.interrupt.injected = 1;  // KVM holds one for injection already
    CHECK(deliverable_vector(s) == 0);
    s.events.interrupt.injected = 0;
    CHECK(deliverable_vector(s) == 0x31);
}

TEST_CASE("a vCPU is parked in HLT with IF clear, or when the guest never started it") {
    InterruptSnapshot s;
    s.mp.mp_state = KVM_MP_STATE_HALTED;
    s.regs.rflags = 0x2;
    CHECK(is_parked(s));
    s.regs.rflags = 0x202;  // an idle CPU: HLT with interrupts on
    CHECK_FALSE(is_parked(s));
    s.mp.mp_state = KVM_MP_STATE_RUNNABLE;
    s.regs.rflags = 0x2;
    CHECK_FALSE(is_parked(s));
    s.mp.mp_state = KVM_MP_STATE_UNINITIALIZED;
    CHECK(is_parked(s));
    s.mp.mp_state = KVM_MP_STATE_INIT_RECEIVED;
    CHECK(is_parked(s));
}
