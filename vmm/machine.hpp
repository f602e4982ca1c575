// SPDX-License-Identifier: Apache-2.0
// Machine: a KVM VM with RAM, vCPU threads, legacy devices, PCI bus 0 and an event loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "bus.hpp"
#include "coalesced_writes.hpp"
#include "cpuid.hpp"
#include "event_loop.hpp"
#include "fault_repair.hpp"
#include "guest_ram.hpp"
#include "kvm.hpp"
#include "pci_host.hpp"
#include "sandbox.hpp"
#include "serial.hpp"
#include "vcpu.hpp"
#include "vfsdax/memory/guest_memory.hpp"

namespace vfsdax::vmm {

struct MachineOptions {
    std::string kernel;  // bzImage path
    std::string initrd;  // empty: none
    std::string cmdline;
    unsigned cpus = 1;
    uint64_t memory = 0;
    int console_in = 0;   // guest console input (stdin); -1: none
    int console_out = 1;  // guest console output (stdout)
    TscDeadline tsc_deadline = TscDeadline::Auto;
    // How run() confines each thread it starts (vCPUs, the DAX scan) and its own, the event
    // loop's, once those have started.
    SandboxPolicy sandbox;
};

// Lifecycle: create() builds the VM, RAM, vCPUs and legacy devices and loads the kernel;
// the embedder then plugs its devices into pci(), mmio(), pio() and loop(); run() starts the
// vCPU threads, runs the event loop on the calling thread, confined as ThreadClass::EventLoop
// for good, and returns the exit status.
class Machine {
public:
    static std::expected<std::unique_ptr<Machine>, std::string> create(
        const MachineOptions& options);
    ~Machine();

    Vm& vm() { return vm_; }
    GuestMemory& memory() { return memory_; }
    Bus& pio() { return pio_; }
    Bus& mmio() { return mmio_; }
    PciHostBridge& pci() { return *pci_; }
    EventLoop& loop() { return *loop_; }
    layout::RamLayout ram_layout() const { return ram_->ram_layout(); }
    // The first KVM memory slot not used for RAM; devices allocate from here up.
    uint32_t allocate_memory_slot() { return next_slot_++; }
    // Firmware-style BAR placement: `size` (a power of two) aligned to itself, 32-bit BARs
    // in the MMIO window below 4 GiB, 64-bit ones above RAM and below the guest's physical
    // address limit. An error says which limit a BAR does not fit under.
    std::expected<uint64_t, std::string> allocate_mmio(uint64_t size, bool is_64bit);
    // Before run(): asked, with every other one, when KVM_RUN fails with EFAULT (the vCPU goes
    // on if any repaired something and stops the machine, status 1, if none did), and every
    // second to scan for what is certainly broken (a failure stops the machine).
    void add_fault_repair(FaultRepair repair) { fault_repairs_.add(std::move(repair)); }

    // 0 when the guest reset itself or a signal asked us to stop; 1 after a vCPU error, whose
    // reason was printed.
    int run();

    // Any thread: ends run() with `status`; the first caller's status and reason win (true
    // for that caller).
    bool request_stop(int status, const std::string& reason);
    // After run(): whether SIGINT or SIGTERM ended it (the guest may have been stuck).
    bool stopped_by_signal() const { return stopped_by_signal_; }
    // After run(): each vCPU's interrupt state, a line each ("vCPU N: ...").
    std::vector<std::string> describe_vcpus() const;

private:
    explicit Machine(Kvm kvm, Vm vm);
    void vcpu_thread(Vcpu& vcpu);
    void scan_for_broken_memory(std::stop_token stop);
    // false: the vCPU must stop (the machine is stopping, or this exit was fatal).
    bool handle_exit(Vcpu& vcpu);
    std::expected<void, std::string> setup_console(const MachineOptions& options);
    std::expected<void, std::string> setup_halt_detection();
    std::expected<void, std::string> setup_coalesced_pci_address();
    // Per vCPU, touched by its own thread only.
    struct VcpuWatch {
        uint64_t checked_tick = 0;
        uint64_t undelivered_since = 0;     // tick a deliverable vector was first seen waiting
        bool undelivered_reported = false;  // this episode's warning is out
    };
    void check_parked(Vcpu& vcpu);
    void watch_undelivered(const Vcpu& vcpu, VcpuWatch& watch, uint64_t tick,
                           const InterruptSnapshot& snapshot);

    Kvm kvm_;
    Vm vm_;
    GuestMemory memory_;
    std::unique_ptr<GuestRam> ram_;
    Bus pio_;
    Bus mmio_;
    std::shared_ptr<PciHostBridge> pci_;
    std::shared_ptr<Serial8250> serial_;
    std::unique_ptr<EventLoop> loop_;
    std::vector<Vcpu> vcpus_;
    std::unique_ptr<CoalescedWrites> coalesced_;  // in vCPU 0's mapping; null without the cap
    FaultRepairs fault_repairs_;
    SandboxPolicy sandbox_;
    std::vector<std::thread> threads_;
    // Halt detection: each tick asks every vCPU whether it is parked; the guest has halted
    // when all of them were parked at the same tick.
    UniqueFd halt_timer_;
    std::atomic<uint64_t> halt_tick_{0};
    std::unique_ptr<std::atomic<uint64_t>[]> parked_at_;  // per vCPU: last tick seen parked
    std::vector<VcpuWatch> watches_;
    UniqueFd signal_fd_;
    int console_in_ = -1;
    uint32_t next_slot_ = GuestRam::kFirstFreeSlot;
    uint64_t mmio32_next_ = layout::kMmio32Start;
    uint64_t mmio64_next_ = 0;            // set from the RAM layout on first use
    unsigned physical_address_bits_ = 0;  // from KVM's CPUID, in create()

    std::atomic<bool> stopping_{false};
    std::atomic<bool> stopped_by_signal_{false};
    std::mutex stop_mutex_;
    int exit_status_ = 0;
    // vCPU threads that have returned, for run() to kick the others until they have too.
    std::mutex exit_mutex_;
    std::condition_variable vcpu_exited_;
    std::size_t vcpus_out_ = 0;
};

}  // namespace vfsdax::vmm
