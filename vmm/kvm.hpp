// SPDX-License-Identifier: Apache-2.0
// Kvm, Vm: thin owners of the /dev/kvm and VM file descriptors and the ioctls vfsdax-vmm uses.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "kvm_uapi.hpp"
#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::vmm {

// Every error carries the ioctl's name and errno text.
using KvmResult = std::expected<void, std::string>;

class Kvm {
public:
    static std::expected<Kvm, std::string> open(const char* path = "/dev/kvm");

    int fd() const { return fd_.get(); }
    int vcpu_mmap_size() const { return vcpu_mmap_size_; }
    // KVM_GET_SUPPORTED_CPUID: what the host and KVM can offer a guest.
    std::expected<std::vector<kvm_cpuid_entry2>, std::string> supported_cpuid() const;
    int check_extension(long capability) const;

private:
    UniqueFd fd_;
    int vcpu_mmap_size_ = 0;
};

class Vm {
public:
    // KVM_CREATE_VM, then the x86 pieces every Linux guest here needs: TSS and identity-map
    // pages, the in-kernel irqchip (PIC, IOAPIC, local APICs) and the PIT.
    static std::expected<Vm, std::string> create(const Kvm& kvm);

    int fd() const { return fd_.get(); }

    KvmResult set_memory_region(uint32_t slot, uint64_t guest_address, uint64_t size, void* host);
    // A slot of size 0 deletes it.
    KvmResult delete_memory_region(uint32_t slot);
    KvmResult irq_line(uint32_t irq, bool level);
    KvmResult signal_msi(uint64_t address, uint32_t data);
    // Port I/O (pio) or MMIO writes of `length` bytes at `address` signal `event_fd` in the
    // kernel instead of exiting to user space.
    KvmResult add_ioeventfd(uint64_t address, uint32_t length, bool pio, int event_fd);
    KvmResult remove_ioeventfd(uint64_t address, uint32_t length, bool pio, int event_fd);
    // Writes of the guest to these `length` ports no longer exit: KVM appends them to the
    // coalesced ring (see CoalescedWrites). Needs KVM_CAP_COALESCED_PIO.
    KvmResult add_coalesced_pio(uint16_t port, uint32_t length);

private:
    UniqueFd fd_;
};

std::string errno_text(const char* what);

}  // namespace vfsdax::vmm
