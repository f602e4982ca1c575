// SPDX-License-Identifier: Apache-2.0
// KVM system and VM ioctls.
#include "kvm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "layout.hpp"

namespace vfsdax::vmm {

std::string errno_text(const char* what) {
    return fmt::format("{}: {}", what, std::strerror(errno));
}

std::expected<Kvm, std::string> Kvm::open(const char* path) {
    Kvm kvm;
    kvm.fd_ = UniqueFd(::open(path, O_RDWR | O_CLOEXEC));
    if (!kvm.fd_) return std::unexpected(errno_text(path));
    const int version = ::ioctl(kvm.fd(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return std::unexpected(
            fmt::format("{}: KVM API version {}, expected {}", path, version, KVM_API_VERSION));
    for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_IOEVENTFD, KVM_CAP_SIGNAL_MSI,
                     KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_EXT_CPUID, KVM_CAP_SET_TSS_ADDR}) {
        if (kvm.check_extension(cap) <= 0)
            return std::unexpected(fmt::format("{}: KVM lacks capability {}", path, cap));
    }
    kvm.vcpu_mmap_size_ = ::ioctl(kvm.fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm.vcpu_mmap_size_ < static_cast<int>(sizeof(kvm_run)))
        return std::unexpected(errno_text("KVM_GET_VCPU_MMAP_SIZE"));
    return kvm;
}

int Kvm::check_extension(long capability) const {
    return ::ioctl(fd(), KVM_CHECK_EXTENSION, capability);
}

std::expected<std::vector<kvm_cpuid_entry2>, std::string> Kvm::supported_cpuid() const {
    // The kernel says E2BIG until the buffer is large enough.
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        std::vector<std::byte> buffer(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
        auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
        cpuid->nent = n;
        if (::ioctl(fd(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
            return std::vector<kvm_cpuid_entry2>(cpuid->entries, cpuid->entries + cpuid->nent);
        if (errno != E2BIG) break;
    }
    return std::unexpected(errno_text("KVM_GET_SUPPORTED_CPUID"));
}

std::expected<Vm, std::string> Vm::create(const Kvm& kvm) {
    Vm vm;
    vm.fd_ = UniqueFd(::ioctl(kvm.fd(), KVM_CREATE_VM, 0));
    if (!vm.fd_) return std::unexpected(errno_text("KVM_CREATE_VM"));
    if (::ioctl(vm.fd(), KVM_SET_TSS_ADDR, layout::kTss) < 0)
        return std::unexpected(errno_text("KVM_SET_TSS_ADDR"));
    uint64_t identity = layout::kIdentityMapPage;
    if (kvm.check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
        ::ioctl(vm.fd(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
        return std::unexpected(errno_text("KVM_SET_IDENTITY_MAP_ADDR"));
    if (::ioctl(vm.fd(), KVM_CREATE_IRQCHIP, 0) < 0)
        return std::unexpected(errno_text("KVM_CREATE_IRQCHIP"));
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(vm.fd(), KVM_CREATE_PIT2, &pit) < 0)
        return std::unexpected(errno_text("KVM_CREATE_PIT2"));
    return vm;
}

KvmResult Vm::set_memory_region(uint32_t slot, uint64_t guest_address, uint64_t size, void* host) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = guest_address;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (::ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return std::unexpected(errno_text("KVM_SET_USER_MEMORY_REGION"));
    return {};
}

KvmResult Vm::delete_memory_region(uint32_t slot) {
    return set_memory_region(slot, 0, 0, nullptr);
}

KvmResult Vm::irq_line(uint32_t irq, bool level) {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level ? 1 : 0;
    if (::ioctl(fd(), KVM_IRQ_LINE, &line) < 0) return std::unexpected(errno_text("KVM_IRQ_LINE"));
    return {};
}

KvmResult Vm::signal_msi(uint64_t address, uint32_t data) {
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(address);
    msi.address_hi = static_cast<uint32_t>(address >> 32);
    msi.data = data;
    // 0: the guest masked or misrouted the vector, which is its business, not an error.
    if (::ioctl(fd(), KVM_SIGNAL_MSI, &msi) < 0)
        return std::unexpected(errno_text("KVM_SIGNAL_MSI"));
    return {};
}

namespace {
KvmResult ioeventfd(int vm, uint64_t address, uint32_t length, bool pio, int event_fd,
                    bool remove) {
    kvm_ioeventfd io{};
    io.addr = address;
    io.len = length;
    io.fd = event_fd;
    io.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (remove ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
    if (::ioctl(vm, KVM_IOEVENTFD, &io) < 0) return std::unexpected(errno_text("KVM_IOEVENTFD"));
    return {};
}
}  // namespace

KvmResult Vm::add_ioeventfd(uint64_t address, uint32_t length, bool pio, int event_fd) {
    return ioeventfd(fd(), address, length, pio, event_fd, false);
}

KvmResult Vm::remove_ioeventfd(uint64_t address, uint32_t length, bool pio, int event_fd) {
    return ioeventfd(fd(), address, length, pio, event_fd, true);
}

KvmResult Vm::add_coalesced_pio(uint16_t port, uint32_t length) {
    kvm_coalesced_mmio_zone zone{};
    zone.addr = port;
    zone.size = length;
    zone.pio = 1;
    if (::ioctl(fd(), KVM_REGISTER_COALESCED_MMIO, &zone) < 0)
        return std::unexpected(errno_text("KVM_REGISTER_COALESCED_MMIO (PIO)"));
    return {};
}

}  // namespace vfsdax::vmm
