// Holds one empty KVM VM for the life of the e2e L1 guest, in a child process it leaves behind.
//
// KVM turns virtualization on in every CPU when the first VM is created and off when the last
// one goes: each an IPI to every CPU and a wait for all of them. In the rig's QEMU-TCG L1 that
// wait has been seen never to end (a VMM exiting, stuck in kvm_destroy_vm ->
// smp_call_function_many_cond: soft lockups, then L1 lost). With this VM alive from L1's start,
// no VMM's VM is ever the first or the last. Exit 0 once the VM exists (the child keeps it),
// 1 with a reason on stderr otherwise.
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
    if (::ioctl(kvm, KVM_CREATE_VM, 0) < 0) return fail("KVM_CREATE_VM");
    const pid_t child = ::fork();
    if (child < 0) return fail("fork");
    if (child > 0) return 0;
    // The child inherited the VM's fd: it holds the VM until L1 powers off.
    ::setsid();
    for (;;) ::pause();
}
