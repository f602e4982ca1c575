// SPDX-License-Identifier: Apache-2.0
// Machine assembly, the vCPU run loop and orderly shutdown.
#include "machine.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>

#include "boot_loader.hpp"
#include "cmos.hpp"
#include "cpuid.hpp"
#include "i8042.hpp"
#include "kvm_check.hpp"
#include "log.hpp"
#include "mapped_file.hpp"

namespace vfsdax::vmm {
namespace {

// A write blocked on a reader that stopped reading ends at the kick of a stopping machine.
void write_all(int fd, std::span<const std::byte> data, const std::atomic<bool>& stopping) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) {
            if (stopping.load()) return;
            continue;
        }
        if (n <= 0) return;  // a closed console loses output; the guest goes on
        data = data.subspan(static_cast<std::size_t>(n));
    }
}

void ignore_signal(int) {}

// How often every vCPU is asked whether the guest halted for good: the delay between a guest's
// poweroff and the VMM's exit. Each ask kicks the vCPU out of the guest. Kept at 1: with 4 a
// second, two nested guest_bench runs ended with L2 triple-faulting, none had at 1 (the
// cause is not proven).
constexpr time_t kHaltCheckSeconds = 1;
constexpr uint64_t kUndeliveredTicks = 10;
// How often the DAX windows are scanned for pages the host truncated under a mapping.
constexpr auto kBrokenMemoryScanPeriod = std::chrono::seconds(1);

// The console terminal, restored when the machine goes.
struct TerminalState {
    bool saved = false;
    termios original{};
};
TerminalState g_terminal;

}  // namespace

Machine::Machine(Kvm kvm, Vm vm) : kvm_(std::move(kvm)), vm_(std::move(vm)) {}

std::expected<std::unique_ptr<Machine>, std::string> Machine::create(
    const MachineOptions& options) {
    auto kvm = Kvm::open();
    if (!kvm) return std::unexpected(kvm.error());
    auto vm = Vm::create(*kvm);
    if (!vm) return std::unexpected(vm.error());
    std::unique_ptr<Machine> m(new Machine(std::move(*kvm), std::move(*vm)));
    m->sandbox_ = options.sandbox;

    auto ram = GuestRam::create(m->vm_, m->memory_, options.memory);
    if (!ram) return std::unexpected("--memory: " + ram.error());
    m->ram_ = std::make_unique<GuestRam>(std::move(*ram));

    auto kernel = MappedFile::open(options.kernel);
    if (!kernel) return std::unexpected("--kernel: " + kernel.error());
    std::optional<MappedFile> initrd;
    if (!options.initrd.empty()) {
        auto r = MappedFile::open(options.initrd);
        if (!r) return std::unexpected("--initrd: " + r.error());
        initrd.emplace(std::move(*r));
    }
    auto entry = load_linux(
        m->memory_, m->ram_->ram_layout(),
        LinuxBoot{kernel->bytes(), initrd ? initrd->bytes() : std::span<const std::byte>{},
                  options.cmdline, options.cpus});
    if (!entry) return std::unexpected(entry.error());
    log(LogLevel::Info, "kernel: {}, entered at {:#x}", entry->kernel_format, entry->rip);

    auto cpuid = m->kvm_.supported_cpuid();
    if (!cpuid) return std::unexpected(cpuid.error());
    m->physical_address_bits_ = physical_address_bits(*cpuid);
    const auto tsc_deadline = resolve_tsc_deadline(
        options.tsc_deadline,
        {.kvm_emulates = m->kvm_.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0,
         .host_is_qemu_tcg = running_under_qemu_tcg()});
    if (!tsc_deadline) return std::unexpected(tsc_deadline.error());
    log(LogLevel::Info, "TSC-deadline timer: {}", *tsc_deadline ? "on" : "off");
    for (unsigned id = 0; id < options.cpus; ++id) {
        auto vcpu = Vcpu::create(m->kvm_, m->vm_, id);
        if (!vcpu) return std::unexpected(fmt::format("vCPU {}: {}", id, vcpu.error()));
        auto entries = *cpuid;
        set_cpuid_for_vcpu(entries, {id, options.cpus, *tsc_deadline});
        KvmResult r = vcpu->set_cpuid(entries);
        if (r) r = vcpu->set_local_interrupts();
        if (r && id == 0) r = vcpu->set_boot_state(*entry);
        if (!r) return std::unexpected(fmt::format("vCPU {}: {}", id, r.error()));
        m->vcpus_.push_back(std::move(*vcpu));
    }

    auto loop = EventLoop::create();
    if (!loop) return std::unexpected(loop.error());
    m->loop_ = std::move(*loop);

    Machine* self = m.get();
    m->serial_ = std::make_shared<Serial8250>(
        [self](bool level) {
            if (auto r = self->vm_.irq_line(layout::kCom1Irq, level); !r)
                self->request_stop(1, "serial: " + r.error());
        },
        [self, out = options.console_out](std::span<const std::byte> bytes) {
            write_all(out, bytes, self->stopping_);
        });
    m->pci_ = std::make_shared<PciHostBridge>([self](uint32_t gsi, bool asserted) {
        if (auto r = self->vm_.irq_line(gsi, asserted); !r)
            self->request_stop(1, "PCI INTx: " + r.error());
    });
    auto i8042 = std::make_shared<I8042>(
        [self] { self->request_stop(0, "the guest reset the machine (i8042)"); });
    if (!m->pio_.insert(layout::kCom1Port, 8, m->serial_) ||
        !m->pio_.insert(layout::kI8042CommandPort, 1, i8042) ||
        !m->pio_.insert(layout::kCmosPort, 2, std::make_shared<Cmos>()) ||
        !m->pio_.insert(layout::kPciConfigAddress, 8, m->pci_))
        return std::unexpected("legacy devices overlap on the PIO bus");

    if (auto r = m->setup_coalesced_pci_address(); !r) return std::unexpected(r.error());
    if (auto r = m->setup_console(options); !r) return std::unexpected(r.error());
    if (auto r = m->setup_halt_detection(); !r) return std::unexpected(r.error());

    // SIGINT/SIGTERM arrive through a signalfd on the event loop; threads created from here on
    // inherit the blocked mask. SIGUSR1 only interrupts KVM_RUN (no SA_RESTART).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr) != 0)
        return std::unexpected("pthread_sigmask failed");
    m->signal_fd_ = UniqueFd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!m->signal_fd_) return std::unexpected(errno_text("signalfd"));
    auto added = m->loop_->add(m->signal_fd_.get(), [self] {
        signalfd_siginfo info{};
        if (::read(self->signal_fd_.get(), &info, sizeof(info)) == sizeof(info) &&
            self->request_stop(0, fmt::format("stopped by {}", ::strsignal(int(info.ssi_signo))))) {
            self->stopped_by_signal_ = true;
        }
    });
    if (!added) return std::unexpected(added.error());
    struct sigaction kick {};
    kick.sa_handler = ignore_signal;
    sigemptyset(&kick.sa_mask);
    if (::sigaction(Vcpu::kKickSignal, &kick, nullptr) < 0)
        return std::unexpected(errno_text("sigaction"));
    ::signal(SIGPIPE, SIG_IGN);
    return m;
}

// A PCI config access is an address write to 0xcf8, then a data access at 0xcfc. With the
// address write buffered in KVM's coalesced ring, it costs one exit instead of two: Linux's
// early scans for AGP bridges and northbridges make 8192 config reads each (every slot of
// every bus), a costly exit each when nested.
std::expected<void, std::string> Machine::setup_coalesced_pci_address() {
    const int ring_page = kvm_.check_extension(KVM_CAP_COALESCED_MMIO);
    if (ring_page <= 0 || kvm_.check_extension(KVM_CAP_COALESCED_PIO) <= 0) {
        log(LogLevel::Debug, "KVM has no coalesced PIO: PCI config accesses take two exits");
        return {};
    }
    const auto page_size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    void* ring = vcpus_.front().mapped_page(static_cast<std::size_t>(ring_page), page_size);
    if (!ring) return std::unexpected("KVM's coalesced ring page is past the vCPU mapping");
    if (auto r = vm_.add_coalesced_pio(layout::kPciConfigAddress, 4); !r) return r;
    coalesced_ =
        std::make_unique<CoalescedWrites>(static_cast<kvm_coalesced_mmio_ring*>(ring), page_size);
    return {};
}

std::expected<void, std::string> Machine::setup_console(const MachineOptions& options) {
    console_in_ = options.console_in;
    if (console_in_ < 0) return {};
    if (::isatty(console_in_) && !g_terminal.saved &&
        ::tcgetattr(console_in_, &g_terminal.original) == 0) {
        // Keys go to the guest as typed; ISIG stays so Ctrl-C still stops the VMM.
        termios raw = g_terminal.original;
        raw.c_lflag &= ~(ICANON | ECHO);
        raw.c_iflag &= ~ICRNL;
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (::tcsetattr(console_in_, TCSANOW, &raw) == 0) g_terminal.saved = true;
    }
    Machine* self = this;
    // A regular file or /dev/null cannot be polled: the guest then simply gets no input.
    auto added = loop_->add(console_in_, [self] {
        std::byte buffer[256];
        const ssize_t n = ::read(self->console_in_, buffer, sizeof(buffer));
        if (n > 0) {
            self->serial_->receive(std::span(buffer, static_cast<std::size_t>(n)));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            self->loop_->remove(self->console_in_);
        }
    });
    if (!added)
        log(LogLevel::Debug, "console input not pollable ({}); the guest gets none", added.error());
    return {};
}

std::expected<void, std::string> Machine::setup_halt_detection() {
    parked_at_ = std::make_unique<std::atomic<uint64_t>[]>(vcpus_.size());
    watches_.resize(vcpus_.size());
    halt_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!halt_timer_) return std::unexpected(errno_text("timerfd_create"));
    itimerspec period{};
    period.it_interval.tv_sec = period.it_value.tv_sec = kHaltCheckSeconds;
    if (::timerfd_settime(halt_timer_.get(), 0, &period, nullptr) < 0)
        return std::unexpected(errno_text("timerfd_settime"));
    return loop_->add(halt_timer_.get(), [this] {
        uint64_t expirations;
        if (::read(halt_timer_.get(), &expirations, sizeof(expirations)) < 0) return;
        ++halt_tick_;
        // The vCPU threads answer in check_parked() once KVM_RUN returns to them.
        for (std::size_t i = 0; i < threads_.size(); ++i)
            vcpus_[i].kick(threads_[i].native_handle());
    });
}

void Machine::check_parked(Vcpu& vcpu) {
    const uint64_t tick = halt_tick_.load();
    VcpuWatch& watch = watches_[vcpu.id()];
    if (tick == 0 || watch.checked_tick == tick) return;
    watch.checked_tick = tick;
    auto snapshot = vcpu.interrupt_snapshot();
    if (!snapshot) {
        request_stop(1, fmt::format("vCPU {}: {}", vcpu.id(), snapshot.error()));
        return;
    }
    watch_undelivered(vcpu, watch, tick, *snapshot);
    if (!is_parked(*snapshot)) return;
    parked_at_[vcpu.id()] = tick;
    for (std::size_t i = 0; i < vcpus_.size(); ++i)
        if (parked_at_[i].load() != tick) return;
    request_stop(0, "the guest halted every vCPU with interrupts off (halt or poweroff)");
}

// Each tick kicks the vCPU out of KVM_RUN and lets it back in, and KVM injects a deliverable
// vector on entry: one requested and deliverable at every tick for this long was never taken,
// which only a broken hypervisor under us explains. Said once per episode, for operators and
// for the e2e rig, whose emulated nested virtualization has been seen doing it.
void Machine::watch_undelivered(const Vcpu& vcpu, VcpuWatch& watch, uint64_t tick,
                                const InterruptSnapshot& snapshot) {
    if (deliverable_vector(snapshot) == 0) {
        watch.undelivered_since = 0;
        watch.undelivered_reported = false;
        return;
    }
    if (watch.undelivered_since == 0) {
        watch.undelivered_since = tick;
        return;
    }
    // At or past the bound: a tick this thread missed must not skip the warning.
    if (watch.undelivered_reported || tick - watch.undelivered_since < kUndeliveredTicks) return;
    watch.undelivered_reported = true;
    log(LogLevel::Warn,
        "vCPU {}: requested interrupts were deliverable at every check for {} s and never taken "
        "(the hypervisor under this VMM does not inject them): {}",
        vcpu.id(), kUndeliveredTicks * kHaltCheckSeconds, format_interrupt_state(snapshot));
}

Machine::~Machine() {
    if (g_terminal.saved) {
        ::tcsetattr(console_in_, TCSANOW, &g_terminal.original);
        g_terminal.saved = false;
    }
}

std::expected<uint64_t, std::string> Machine::allocate_mmio(uint64_t size, bool is_64bit) {
    auto align = [](uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); };
    if (size == 0 || (size & (size - 1)) != 0)
        return std::unexpected(fmt::format("{} bytes is not a power of two", size));
    if (is_64bit) {
        if (mmio64_next_ == 0)
            mmio64_next_ =
                align(std::max(layout::kHighRamStart, ram_layout().end()), layout::kMmio64Align);
        const uint64_t base = align(mmio64_next_, size);
        // A BAR the guest cannot address would be accepted and never work.
        const uint64_t limit = uint64_t{1} << physical_address_bits_;
        if (base >= limit || size > limit - base) {
            return std::unexpected(fmt::format(
                "{} bytes above RAM would end past the guest's {}-bit physical address space", size,
                physical_address_bits_));
        }
        mmio64_next_ = base + size;
        return base;
    }
    const uint64_t base = align(mmio32_next_, size);
    if (base + size > layout::kMmio32End)
        return std::unexpected(fmt::format("no room for {} bytes in the 32-bit MMIO window", size));
    mmio32_next_ = base + size;
    return base;
}

bool Machine::request_stop(int status, const std::string& reason) {
    bool first = false;
    {
        std::lock_guard lock(stop_mutex_);
        if (!stopping_.exchange(true)) {
            first = true;
            exit_status_ = status;
            if (status == 0) {
                log(LogLevel::Info, "{}", reason);
            } else {
                log(LogLevel::Error, "{}", reason);
            }
        }
    }
    loop_->stop();
    return first;
}

std::vector<std::string> Machine::describe_vcpus() const {
    std::vector<std::string> lines;
    for (const Vcpu& vcpu : vcpus_) {
        auto snapshot = vcpu.interrupt_snapshot();
        lines.push_back(
            fmt::format("vCPU {}: {}", vcpu.id(),
                        snapshot ? format_interrupt_state(*snapshot) : snapshot.error()));
    }
    return lines;
}

int Machine::run() {
    threads_.reserve(vcpus_.size());
    for (Vcpu& vcpu : vcpus_) {
        threads_.emplace_back([this, &vcpu] {
            // Named for ps/top and for seccomp's audit records (comm=).
            pthread_setname_np(pthread_self(), fmt::format("vfsdax-vcpu{}", vcpu.id()).c_str());
            if (auto confined = confine_thread(ThreadClass::Vcpu, sandbox_); !confined) {
                request_stop(1, fmt::format("vCPU {}: {}", vcpu.id(), confined.error()));
            } else {
                vcpu_thread(vcpu);
            }
            std::lock_guard lock(exit_mutex_);
            ++vcpus_out_;
            vcpu_exited_.notify_all();
        });
    }
    // On its own thread: a scan probes every mapped extent, and neither device notifications
    // nor signals on the event loop may wait for it.
    std::jthread scanner;
    if (!fault_repairs_.empty()) {
        scanner = std::jthread([this](std::stop_token stop) {
            pthread_setname_np(pthread_self(), "vfsdax-daxscan");
            if (auto confined = confine_thread(ThreadClass::Vcpu, sandbox_); !confined) {
                request_stop(1, fmt::format("DAX scan: {}", confined.error()));
                return;
            }
            scan_for_broken_memory(stop);
        });
    }
    // Last, so that the threads above took this thread's capabilities before it drops them.
    if (auto confined = confine_thread(ThreadClass::EventLoop, sandbox_); !confined) {
        request_stop(1, fmt::format("event loop: {}", confined.error()));
    }
    loop_->run();
    scanner.request_stop();
    stopping_ = true;
    // A vCPU thread outside KVM_RUN (writing to a console nobody reads) may miss one kick:
    // kick again until every thread is out.
    std::unique_lock exits(exit_mutex_);
    do {
        for (std::size_t i = 0; i < threads_.size(); ++i)
            vcpus_[i].kick(threads_[i].native_handle());
    } while (!vcpu_exited_.wait_for(exits, std::chrono::milliseconds(100),
                                    [this] { return vcpus_out_ == threads_.size(); }));
    exits.unlock();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    std::lock_guard lock(stop_mutex_);
    return exit_status_;
}

// A vCPU stuck on a window page the host truncated may never leave KVM_RUN (see FaultRepairs):
// once a second, find and repair such pages.
void Machine::scan_for_broken_memory(std::stop_token stop) {
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, stop, kBrokenMemoryScanPeriod, [] { return false; }) &&
           !stop.stop_requested()) {
        if (auto scanned = fault_repairs_.scan(); !scanned) {
            request_stop(1, scanned.error());
            return;
        }
    }
}

void Machine::vcpu_thread(Vcpu& vcpu) {
    while (!stopping_.load()) {
        const uint64_t repair_epoch = fault_repairs_.epoch();
        const int r = vcpu.run_once();
        if (r == -EINTR || r == -EAGAIN) {
            vcpu.run()->immediate_exit = 0;
            check_parked(vcpu);
            continue;
        }
        if (r == -EFAULT) {
            auto repaired = fault_repairs_.repair(repair_epoch);
            if (repaired) continue;
            request_stop(1, fmt::format("vCPU {}: KVM_RUN: {}: {}", vcpu.id(),
                                        std::strerror(EFAULT), repaired.error()));
            return;
        }
        if (r < 0) {
            request_stop(1, fmt::format("vCPU {}: KVM_RUN: {}", vcpu.id(), std::strerror(-r)));
            return;
        }
        if (!handle_exit(vcpu)) return;
    }
}

bool Machine::handle_exit(Vcpu& vcpu) {
    kvm_run* run = vcpu.run();
    if (coalesced_) coalesced_->drain(pio_, mmio_);
    switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            auto* data = reinterpret_cast<std::byte*>(run) + run->io.data_offset;
            for (uint32_t i = 0; i < run->io.count; ++i) {
                std::span<std::byte> item(data + i * run->io.size, run->io.size);
                if (run->io.direction == KVM_EXIT_IO_OUT) {
                    pio_.write(run->io.port, item);
                } else if (!pio_.read(run->io.port, item)) {
                    std::fill(item.begin(), item.end(), std::byte{0xff});  // nothing there
                }
            }
            return true;
        }
        case KVM_EXIT_MMIO: {
            std::span<std::byte> item(reinterpret_cast<std::byte*>(run->mmio.data),
                                      std::min<uint32_t>(run->mmio.len, sizeof(run->mmio.data)));
            if (run->mmio.is_write) {
                mmio_.write(run->mmio.phys_addr, item);
            } else if (!mmio_.read(run->mmio.phys_addr, item)) {
                std::fill(item.begin(), item.end(), std::byte{0xff});
            }
            return true;
        }
        case KVM_EXIT_INTR:
            return true;
        case KVM_EXIT_SYSTEM_EVENT:
            request_stop(0, fmt::format("the guest stopped the machine (system event {})",
                                        run->system_event.type));
            return false;
        case KVM_EXIT_SHUTDOWN:
            request_stop(1, fmt::format("vCPU {}: triple fault (KVM_EXIT_SHUTDOWN); {}", vcpu.id(),
                                        vcpu.describe_state()));
            return false;
        case KVM_EXIT_FAIL_ENTRY:
            request_stop(1, fmt::format("vCPU {}: VM entry failed, hardware reason {:#x}; {}",
                                        vcpu.id(), run->fail_entry.hardware_entry_failure_reason,
                                        vcpu.describe_state()));
            return false;
        case KVM_EXIT_INTERNAL_ERROR:
            request_stop(1, fmt::format("vCPU {}: {}; {}", vcpu.id(),
                                        describe_internal_error(run->internal.suberror),
                                        vcpu.describe_state()));
            return false;
        default:
            request_stop(1, fmt::format("vCPU {}: unexpected KVM exit reason {}; {}", vcpu.id(),
                                        run->exit_reason, vcpu.describe_state()));
            return false;
    }
}

}  // namespace vfsdax::vmm
