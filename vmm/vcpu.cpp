// SPDX-License-Identifier: Apache-2.0
// vCPU creation and the register state Linux's 64-bit entry expects.
#include "vcpu.hpp"

#include <asm/processor-flags.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "cpu_state.hpp"
#include "layout.hpp"
#include "long_mode.hpp"

namespace vfsdax::vmm {
namespace {

constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;
constexpr uint32_t kApicLvt0 = 0x350, kApicLvt1 = 0x360;
constexpr uint32_t kApicDeliveryMask = 0x700, kApicDmNmi = 0x400, kApicDmExtInt = 0x700;
constexpr uint64_t kBootStack = 0x8ff0;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.s = 1;
    s.g = 1;
    s.l = code ? 1 : 0;
    s.db = code ? 0 : 1;
    return s;
}

void set_apic_reg(kvm_lapic_state& lapic, uint32_t offset, uint32_t value) {
    std::memcpy(lapic.regs + offset, &value, 4);
}

}  // namespace

std::expected<Vcpu, std::string> Vcpu::create(const Kvm& kvm, const Vm& vm, unsigned id) {
    Vcpu vcpu;
    vcpu.id_ = id;
    vcpu.fd_ = UniqueFd(::ioctl(vm.fd(), KVM_CREATE_VCPU, id));
    if (!vcpu.fd_) return std::unexpected(errno_text("KVM_CREATE_VCPU"));
    vcpu.run_size_ = static_cast<std::size_t>(kvm.vcpu_mmap_size());
    void* run =
        ::mmap(nullptr, vcpu.run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd_.get(), 0);
    if (run == MAP_FAILED) return std::unexpected(errno_text("mmap kvm_run"));
    vcpu.run_ = static_cast<kvm_run*>(run);
    return vcpu;
}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(other.run_size_),
      id_(other.id_) {}

Vcpu::~Vcpu() {
    if (run_) ::munmap(run_, run_size_);
}

KvmResult Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
    std::vector<std::byte> buffer(sizeof(kvm_cpuid2) + entries.size() * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
    cpuid->nent = static_cast<uint32_t>(entries.size());
    std::memcpy(cpuid->entries, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
    if (::ioctl(fd_.get(), KVM_SET_CPUID2, cpuid) < 0)
        return std::unexpected(errno_text("KVM_SET_CPUID2"));
    return {};
}

KvmResult Vcpu::set_local_interrupts() {
    kvm_lapic_state lapic{};
    if (::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0)
        return std::unexpected(errno_text("KVM_GET_LAPIC"));
    set_apic_reg(lapic, kApicLvt0,
                 (get_apic_reg(lapic, kApicLvt0) & ~kApicDeliveryMask) | kApicDmExtInt);
    set_apic_reg(lapic, kApicLvt1,
                 (get_apic_reg(lapic, kApicLvt1) & ~kApicDeliveryMask) | kApicDmNmi);
    if (::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0)
        return std::unexpected(errno_text("KVM_SET_LAPIC"));
    return {};
}

KvmResult Vcpu::set_boot_state(const BootEntry& entry) {
    kvm_sregs sregs{};
    if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0)
        return std::unexpected(errno_text("KVM_GET_SREGS"));
    constexpr uint8_t kCodeExecReadAccessed = 11, kDataReadWriteAccessed = 3, kTssBusy64 = 11;
    sregs.cs = flat_segment(kBootCodeSelector, kCodeExecReadAccessed, true);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
        flat_segment(kBootDataSelector, kDataReadWriteAccessed, false);
    sregs.tr = kvm_segment{};
    sregs.tr.selector = kBootTssSelector;
    sregs.tr.limit = 0x67;
    sregs.tr.type = kTssBusy64;
    sregs.tr.present = 1;
    sregs.gdt.base = layout::kGdt;
    sregs.gdt.limit = kGdtEntries * 8 - 1;
    sregs.idt = kvm_dtable{};
    sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs.cr3 = layout::kPml4;
    sregs.cr4 = X86_CR4_PAE;
    sregs.efer = kEferLme | kEferLma;
    if (::ioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0)
        return std::unexpected(errno_text("KVM_SET_SREGS"));

    kvm_fpu fpu{};
    fpu.fcw = 0x37f;     // x87 defaults after FNINIT
    fpu.mxcsr = 0x1f80;  // SSE defaults: all exceptions masked
    if (::ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0)
        return std::unexpected(errno_text("KVM_SET_FPU"));

    kvm_regs regs{};
    regs.rflags = X86_EFLAGS_FIXED;
    regs.rip = entry.rip;
    regs.rsi = entry.boot_params;
    regs.rsp = regs.rbp = kBootStack;
    if (::ioctl(fd_.get(), KVM_SET_REGS, &regs) < 0)
        return std::unexpected(errno_text("KVM_SET_REGS"));
    return {};
}

std::string Vcpu::describe_state() const {
    kvm_regs regs{};
    kvm_sregs sregs{};
    if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) return errno_text("KVM_GET_REGS");
    if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) return errno_text("KVM_GET_SREGS");
    return format_cpu_state(regs, sregs);
}

std::expected<InterruptSnapshot, std::string> Vcpu::interrupt_snapshot() const {
    InterruptSnapshot s;
    if (::ioctl(fd_.get(), KVM_GET_MP_STATE, &s.mp) < 0)
        return std::unexpected(errno_text("KVM_GET_MP_STATE"));
    if (::ioctl(fd_.get(), KVM_GET_REGS, &s.regs) < 0)
        return std::unexpected(errno_text("KVM_GET_REGS"));
    if (::ioctl(fd_.get(), KVM_GET_SREGS, &s.sregs) < 0)
        return std::unexpected(errno_text("KVM_GET_SREGS"));
    if (::ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &s.events) < 0)
        return std::unexpected(errno_text("KVM_GET_VCPU_EVENTS"));
    if (::ioctl(fd_.get(), KVM_GET_LAPIC, &s.lapic) < 0)
        return std::unexpected(errno_text("KVM_GET_LAPIC"));
    return s;
}

int Vcpu::run_once() {
    return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? -errno : 0;
}

void Vcpu::kick(pthread_t thread) {
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
    ::pthread_kill(thread, kKickSignal);
}

}  // namespace vfsdax::vmm
