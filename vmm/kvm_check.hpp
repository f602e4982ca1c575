// SPDX-License-Identifier: Apache-2.0
// kvm_check: whether this host's /dev/kvm can run a stock (unmodified) x86-64 guest kernel.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>

namespace vfsdax::vmm {

// Where the cheap check reads the host's facts; tests point them at a fake tree.
struct KvmHostRoots {
    std::filesystem::path sys = "/sys";
    std::filesystem::path proc = "/proc";
};

// The cheap check: the loaded KVM modules (sysfs) and the CPU's virtualization flags
// (/proc/cpuinfo). Returns why this host's KVM cannot run stock guest kernels, or nullopt
// when nothing there speaks against it. A /dev/kvm from kvm_pvm (a paravirtual KVM: it
// opens, makes VMs and runs real-mode code, but runs only PVM-enabled guest kernels) and a
// CPU with neither VMX nor SVM are recognised. Unreadable files are no evidence either way.
std::optional<std::string> stock_guest_obstacle(const KvmHostRoots& roots = {});

// What the probe guest proved, when it passed.
struct ProbeReport {
    std::chrono::microseconds elapsed;
};

// The probe: a VM with one vCPU that starts in real mode, loads a GDT, turns on PAE, paging
// and long mode (mov to cr0/cr3/cr4, wrmsr EFER), then in 64-bit code runs cpuid and rdmsr,
// loads an IDT and takes an exception (int3) through it and back (iretq), swapgs, wrmsr,
// invlpg, stores to memory through its page tables and ends with OUT and HLT. Each exit, the
// registers and the stored value are checked. kvm_pvm passes the mode switch and fails the
// exception with an internal error (see kvm_check.cpp). Runs in a child process killed after
// `limit`: a KVM that never returns from KVM_RUN (or spins for a long time in it) cannot hang the
// caller. Call it from a single-threaded process (it forks and the child allocates).
std::expected<ProbeReport, std::string> probe_stock_guest(
    const char* kvm_path = "/dev/kvm",
    std::chrono::milliseconds limit = std::chrono::milliseconds(10000));

// The probe itself, in this process and without a time limit: for the child above, and for
// callers that bound it themselves.
std::expected<void, std::string> run_probe_guest(const char* kvm_path);

// The message for a KVM_EXIT_INTERNAL_ERROR: the suberror by name and the likely reasons.
std::string describe_internal_error(uint32_t suberror);

}  // namespace vfsdax::vmm
