// SPDX-License-Identifier: Apache-2.0
// Holds one KVM VM with one vCPU (never run) for the life of the e2e L1 guest, in a child
// process it leaves behind.
//
// KVM turns virtualization on in every CPU when the first VM is created and off when the last
// one goes: each an IPI to every CPU and a wait for all of them. In the rig's QEMU-TCG L1 that
// wait has been seen never to end (a VMM exiting, stuck in kvm_destroy_vm ->
// smp_call_function_many_cond: soft lockups, then L1 lost). KVM also flips static keys, code
// patched live on every CPU (int3, then sync IPIs), when the first VM appears (preempt
// notifiers) and when the first vCPU with an in-kernel LAPIC appears and its guest enables
// the APIC (the software-disabled-APIC key, back off a second later): L1 was lost once with
// CPU 1 stuck in the int3 handler at such a jump label in __schedule and CPU 0 waiting for it.
// With this VM and its vCPU (LAPIC left software-disabled) alive from L1's start, no VMM's VM
// or vCPU is ever the first or the last: they only change counts. Exit 0 once both exist (the
// child keeps them), 1 with a reason on stderr otherwise.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

int fail(const char* what) {
    std::fprintf(stderr, "kvm_hold: %s: %s\n", what, std::strerror(errno));
    return 1;
}

}  // namespace

int main() {
    const int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return fail("open /dev/kvm");
    const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) return fail("KVM_CREATE_VM");
    // The LAPIC comes with the in-kernel irqchip, as in every VMM's VM.
    if (::ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) return fail("KVM_CREATE_IRQCHIP");
    if (::ioctl(vm, KVM_CREATE_VCPU, 0) < 0) return fail("KVM_CREATE_VCPU");
    const pid_t child = ::fork();
    if (child < 0) return fail("fork");
    if (child > 0) return 0;
    // The child inherited the fds: it holds the VM and its vCPU until L1 powers off.
    ::setsid();
    for (;;) ::pause();
}
