// SPDX-License-Identifier: Apache-2.0
// Vcpu: one KVM vCPU, its kvm_run page and its boot-time register state.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <expected>
#include <string>
#include <vector>

#include "boot_loader.hpp"
#include "cpu_state.hpp"
#include "kvm.hpp"
#include "kvm_uapi.hpp"

namespace vfsdax::vmm {

class Vcpu {
public:
    static std::expected<Vcpu, std::string> create(const Kvm& kvm, const Vm& vm, unsigned id);
    Vcpu(Vcpu&& other) noexcept;
    Vcpu& operator=(Vcpu&&) = delete;
    ~Vcpu();

    unsigned id() const { return id_; }
    KvmResult set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
    // LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as a PC's firmware leaves them.
    KvmResult set_local_interrupts();
    // The bootstrap vCPU in 64-bit mode at `entry` per Linux's 64-bit boot protocol. The
    // others wait for INIT/SIPI from the guest, which the in-kernel local APIC handles.
    KvmResult set_boot_state(const BootEntry& entry);

    // This vCPU's registers in one line (format_cpu_state), or why they could not be read.
    std::string describe_state() const;
    // Its run and interrupt state (is_parked, deliverable_vector, format_interrupt_state).
    // Outside KVM_RUN only: KVM holds each vCPU's state while it runs.
    std::expected<InterruptSnapshot, std::string> interrupt_snapshot() const;

    // KVM_RUN once: 0 with the exit in run(), or -errno.
    int run_once();
    kvm_run* run() const { return run_; }
    // The page `index` pages into this vCPU's KVM mapping (kvm_run is page 0), or null when the
    // mapping is shorter.
    void* mapped_page(std::size_t index, std::size_t page_size) const {
        if ((index + 1) * page_size > run_size_) return nullptr;
        return reinterpret_cast<std::byte*>(run_) + index * page_size;
    }

    // From another thread: makes this vCPU's current or next KVM_RUN return (EINTR) soon. The
    // vCPU thread must have an empty SIGUSR1 handler installed without SA_RESTART.
    void kick(pthread_t thread);
    static constexpr int kKickSignal = SIGUSR1;

private:
    Vcpu() = default;
    UniqueFd fd_;
    kvm_run* run_ = nullptr;
    std::size_t run_size_ = 0;
    unsigned id_ = 0;
};

}  // namespace vfsdax::vmm
