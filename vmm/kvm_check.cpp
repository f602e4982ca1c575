// SPDX-License-Identifier: Apache-2.0
// Recognises a /dev/kvm that cannot run stock guest kernels: module and CPU flags, probe guest.
#include "kvm_check.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "kvm.hpp"
#include "kvm_uapi.hpp"
#include "vfsdax/util/unique_fd.hpp"

// The probe guest's code, assembled here and copied to guest-physical 0x1000 (kProbeCode
// below; the absolute addresses in it assume that). It starts in real mode and goes straight
// to long mode as a boot loader does; every instruction from lgdt to wrmsr and the far jump
// is one a stock kernel's early boot runs and one a paravirtual-only KVM cannot run natively.
// r8 = cpuid(0).ebx, r9 = EFER as rdmsr reads it, r10 = cr3. Then what an early kernel does
// next: lidt, cr4 with PGE and the SSE bits, an exception (int3) delivered through a 64-bit
// interrupt gate whose handler sets r11 and returns with iretq, swapgs, wrmsr GS_BASE, invlpg.
// 0x5000 gets a 64-bit pattern; then OUT 0x5a to port 0x3f8 and HLT.
// On kvm_pvm (these CI machines) everything up to the int3 runs (emulated); the int3 ends
// KVM_RUN at once with an internal error, suberror 1, as a stock kernel's boot does there
// after tens of seconds.
asm(R"(
    .pushsection .rodata.vfsdax_kvm_probe, "a", @progbits
    .globl vfsdax_kvm_probe_start
    .hidden vfsdax_kvm_probe_start
    .globl vfsdax_kvm_probe_halted
    .hidden vfsdax_kvm_probe_halted
    .globl vfsdax_kvm_probe_end
    .hidden vfsdax_kvm_probe_end
vfsdax_kvm_probe_start:
    .code16
    cli
    lgdtl vfsdax_kvm_probe_gdtr - vfsdax_kvm_probe_start + 0x1000
    movl $0x20, %eax                  # CR4.PAE
    movl %eax, %cr4
    movl $0x2000, %eax                # the PML4
    movl %eax, %cr3
    movl $0xc0000080, %ecx            # EFER.LME
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax                   # CR0.PG | CR0.PE: long mode, from real mode
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(vfsdax_kvm_probe_long - vfsdax_kvm_probe_start + 0x1000)
    .code64
vfsdax_kvm_probe_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    xorl %ecx, %ecx
    cpuid
    movl %ebx, %r8d
    movl $0xc0000080, %ecx
    rdmsr
    movl %eax, %r9d
    movq %cr3, %r10
    movq $0x8000, %rsp
    lidt vfsdax_kvm_probe_idtr - vfsdax_kvm_probe_start + 0x1000
    movq %cr4, %rax
    orq $0x680, %rax                  # CR4.PGE | OSFXSR | OSXMMEXCPT
    movq %rax, %cr4
    int3                              # to vfsdax_kvm_probe_breakpoint and back
    swapgs
    movl $0xc0000101, %ecx            # GS_BASE = 1 << 32
    xorl %eax, %eax
    movl $1, %edx
    wrmsr
    invlpg 0x5000
    movabsq $0x1122334455667788, %rax
    movq %rax, 0x5000
    movw $0x3f8, %dx
    movb $0x5a, %al
    outb %al, %dx
    hlt
vfsdax_kvm_probe_halted:
vfsdax_kvm_probe_breakpoint:
    movq $0x33, %r11
    iretq
    .p2align 4
vfsdax_kvm_probe_idt:                 # vectors 0-2 not present, 3 (#BP): interrupt gate, DPL 0
    .fill 6, 8, 0
    .word vfsdax_kvm_probe_breakpoint - vfsdax_kvm_probe_start + 0x1000
    .word 0x08
    .word 0x8e00
    .word 0
    .long 0
    .long 0
vfsdax_kvm_probe_idtr:
    .word 63
    .quad vfsdax_kvm_probe_idt - vfsdax_kvm_probe_start + 0x1000
vfsdax_kvm_probe_gdt:
    .quad 0
    .quad 0x00af9b000000ffff          # 0x08: 64-bit code, DPL 0
    .quad 0x00cf93000000ffff          # 0x10: flat data
vfsdax_kvm_probe_gdtr:
    .word 23
    .long vfsdax_kvm_probe_gdt - vfsdax_kvm_probe_start + 0x1000
vfsdax_kvm_probe_end:
    .popsection
)");

extern "C" const unsigned char vfsdax_kvm_probe_start[];
extern "C" const unsigned char vfsdax_kvm_probe_halted[];
extern "C" const unsigned char vfsdax_kvm_probe_end[];

namespace vfsdax::vmm {
namespace {

constexpr uint64_t kProbeMemory = 0x10000;
constexpr uint64_t kProbeCode = 0x1000;
constexpr uint64_t kProbePml4 = 0x2000, kProbePdpt = 0x3000, kProbePd = 0x4000;
constexpr uint64_t kProbeStore = 0x5000;
constexpr uint64_t kProbePattern = 0x1122334455667788;
constexpr uint16_t kProbePort = 0x3f8;
constexpr uint8_t kProbeByte = 0x5a;
constexpr uint64_t kProbeBreakpointMark = 0x33;
constexpr uint64_t kGsBaseMsr = 0xc0000101, kProbeGsBase = 1ull << 32;
// Where VMX without unrestricted guest keeps its real-mode TSS: outside the probe's RAM.
constexpr uint64_t kProbeTss = 0xfffbd000;
constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;
constexpr uint64_t kCr0Pe = 1, kCr0Pg = 1u << 31, kCr4Pae = 1u << 5;

bool path_exists(const std::filesystem::path& path) {
    std::error_code error;
    return std::filesystem::exists(path, error);
}

// Whether /proc/cpuinfo's flags lines name vmx or svm; nullopt when it has no flags line.
std::optional<bool> cpu_offers_virtualization(const std::filesystem::path& cpuinfo) {
    std::ifstream in(cpuinfo);
    if (!in) return std::nullopt;
    std::optional<bool> found;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with("flags")) continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        found = false;
        std::istringstream words(line.substr(colon + 1));
        std::string word;
        while (words >> word) {
            if (word == "vmx" || word == "svm") return true;
        }
    }
    return found;
}

const char* exit_name(uint32_t reason) {
    switch (reason) {
        case KVM_EXIT_IO:
            return "I/O";
        case KVM_EXIT_HLT:
            return "HLT";
        case KVM_EXIT_MMIO:
            return "MMIO";
        case KVM_EXIT_SHUTDOWN:
            return "shutdown (triple fault)";
        case KVM_EXIT_FAIL_ENTRY:
            return "failed entry";
        case KVM_EXIT_INTERNAL_ERROR:
            return "internal error";
        default:
            return "unexpected";
    }
}

std::string describe_exit(int vcpu, const kvm_run& run) {
    kvm_regs regs{};
    const std::string rip = ::ioctl(vcpu, KVM_GET_REGS, &regs) == 0 ? fmt::format("{:#x}", regs.rip)
                                                                    : std::string("unknown");
    if (run.exit_reason == KVM_EXIT_INTERNAL_ERROR)
        return fmt::format("KVM internal error, suberror {}, at rip {}", run.internal.suberror,
                           rip);
    return fmt::format("exit {} ({}) at rip {}", run.exit_reason, exit_name(run.exit_reason), rip);
}

}  // namespace

std::optional<std::string> stock_guest_obstacle(const KvmHostRoots& roots) {
    const std::filesystem::path modules = roots.sys / "module";
    const bool pvm = path_exists(modules / "kvm_pvm");
    const bool hardware_module =
        path_exists(modules / "kvm_intel") || path_exists(modules / "kvm_amd");
    const std::optional<bool> flags = cpu_offers_virtualization(roots.proc / "cpuinfo");
    if (pvm && !hardware_module) {
        return fmt::format("/dev/kvm is kvm_pvm, which runs only PVM guest kernels{}",
                           flags == false ? ", and the CPU offers neither VMX nor SVM" : "");
    }
    if (flags == false) {
        return std::string(
            "the CPU offers neither VMX nor SVM (/proc/cpuinfo has no vmx or svm flag), so "
            "/dev/kvm cannot run a stock guest with hardware virtualization");
    }
    return std::nullopt;
}

std::expected<void, std::string> run_probe_guest(const char* kvm_path) {
    const UniqueFd kvm(::open(kvm_path, O_RDWR | O_CLOEXEC));
    if (!kvm) return std::unexpected(errno_text(kvm_path));
    const int run_size = ::ioctl(kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < static_cast<int>(sizeof(kvm_run)))
        return std::unexpected(errno_text("KVM_GET_VCPU_MMAP_SIZE"));
    const UniqueFd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vm) return std::unexpected(errno_text("KVM_CREATE_VM"));
    if (::ioctl(vm.get(), KVM_SET_TSS_ADDR, kProbeTss) < 0)
        return std::unexpected(errno_text("KVM_SET_TSS_ADDR"));

    void* memory = ::mmap(nullptr, kProbeMemory, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) return std::unexpected(errno_text("mmap probe memory"));
    struct Unmap {
        void* p;
        ~Unmap() { ::munmap(p, kProbeMemory); }
    } unmap{memory};
    auto* bytes = static_cast<unsigned char*>(memory);
    const auto code_size = static_cast<std::size_t>(vfsdax_kvm_probe_end - vfsdax_kvm_probe_start);
    std::memcpy(bytes + kProbeCode, vfsdax_kvm_probe_start, code_size);
    // Identity map of the first 2 MiB with one large page: PML4 -> PDPT -> PD.
    const uint64_t table = 3, large = 0x83;  // present | writable (| page size)
    const uint64_t pml4e = kProbePdpt | table, pdpte = kProbePd | table, pde = 0 | large;
    std::memcpy(bytes + kProbePml4, &pml4e, 8);
    std::memcpy(bytes + kProbePdpt, &pdpte, 8);
    std::memcpy(bytes + kProbePd, &pde, 8);

    kvm_userspace_memory_region region{};
    region.slot = 0;
    region.guest_phys_addr = 0;
    region.memory_size = kProbeMemory;
    region.userspace_addr = reinterpret_cast<uint64_t>(memory);
    if (::ioctl(vm.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return std::unexpected(errno_text("KVM_SET_USER_MEMORY_REGION"));

    const UniqueFd vcpu(::ioctl(vm.get(), KVM_CREATE_VCPU, 0));
    if (!vcpu) return std::unexpected(errno_text("KVM_CREATE_VCPU"));
    void* run_map = ::mmap(nullptr, static_cast<std::size_t>(run_size), PROT_READ | PROT_WRITE,
                           MAP_SHARED, vcpu.get(), 0);
    if (run_map == MAP_FAILED) return std::unexpected(errno_text("mmap kvm_run"));
    struct UnmapRun {
        void* p;
        std::size_t size;
        ~UnmapRun() { ::munmap(p, size); }
    } unmap_run{run_map, static_cast<std::size_t>(run_size)};
    auto* run = static_cast<kvm_run*>(run_map);

    // The guest sees the CPUID KVM supports; leaf 0's ebx (the vendor string's start) is what
    // its cpuid must return. A KVM without KVM_GET_SUPPORTED_CPUID leaves that unchecked.
    std::optional<uint32_t> vendor;
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        std::vector<std::byte> buffer(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
        auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
        cpuid->nent = n;
        if (::ioctl(kvm.get(), KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
            if (errno == E2BIG) continue;
            break;
        }
        if (::ioctl(vcpu.get(), KVM_SET_CPUID2, cpuid) < 0)
            return std::unexpected(errno_text("KVM_SET_CPUID2"));
        for (uint32_t i = 0; i < cpuid->nent; ++i)
            if (cpuid->entries[i].function == 0) vendor = cpuid->entries[i].ebx;
        break;
    }

    kvm_sregs sregs{};
    if (::ioctl(vcpu.get(), KVM_GET_SREGS, &sregs) < 0)
        return std::unexpected(errno_text("KVM_GET_SREGS"));
    sregs.cs.selector = 0;
    sregs.cs.base = 0;
    if (::ioctl(vcpu.get(), KVM_SET_SREGS, &sregs) < 0)
        return std::unexpected(errno_text("KVM_SET_SREGS"));
    kvm_regs regs{};
    regs.rip = kProbeCode;
    regs.rflags = 2;
    if (::ioctl(vcpu.get(), KVM_SET_REGS, &regs) < 0)
        return std::unexpected(errno_text("KVM_SET_REGS"));

    if (::ioctl(vcpu.get(), KVM_RUN, 0) < 0) return std::unexpected(errno_text("KVM_RUN"));
    if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
        run->io.port != kProbePort || run->io.size != 1 || run->io.count != 1) {
        return std::unexpected(fmt::format("the probe guest did not reach its OUT: {}",
                                           describe_exit(vcpu.get(), *run)));
    }
    const auto out = *(reinterpret_cast<const uint8_t*>(run) + run->io.data_offset);
    if (out != kProbeByte)
        return std::unexpected(fmt::format("the probe guest wrote {:#x} to port {:#x}, not {:#x}",
                                           out, kProbePort, kProbeByte));
    if (::ioctl(vcpu.get(), KVM_RUN, 0) < 0) return std::unexpected(errno_text("KVM_RUN"));
    if (run->exit_reason != KVM_EXIT_HLT)
        return std::unexpected(
            fmt::format("the probe guest did not halt: {}", describe_exit(vcpu.get(), *run)));

    if (::ioctl(vcpu.get(), KVM_GET_REGS, &regs) < 0)
        return std::unexpected(errno_text("KVM_GET_REGS"));
    if (::ioctl(vcpu.get(), KVM_GET_SREGS, &sregs) < 0)
        return std::unexpected(errno_text("KVM_GET_SREGS"));
    uint64_t stored = 0;
    std::memcpy(&stored, bytes + kProbeStore, 8);
    const uint64_t halted =
        kProbeCode + static_cast<uint64_t>(vfsdax_kvm_probe_halted - vfsdax_kvm_probe_start);
    std::vector<std::string> wrong;
    if (regs.rip != halted) wrong.push_back(fmt::format("rip {:#x}, not {:#x}", regs.rip, halted));
    if ((regs.r9 & (kEferLme | kEferLma)) != (kEferLme | kEferLma))
        wrong.push_back(fmt::format("rdmsr EFER gave {:#x}, without LME and LMA", regs.r9));
    if (regs.r11 != kProbeBreakpointMark)
        wrong.push_back(fmt::format("r11 {:#x}: the int3 handler did not run", regs.r11));
    if (regs.r10 != kProbePml4)
        wrong.push_back(fmt::format("cr3 read {:#x}, not {:#x}", regs.r10, kProbePml4));
    if (vendor && static_cast<uint32_t>(regs.r8) != *vendor)
        wrong.push_back(fmt::format("cpuid(0).ebx {:#x}, not {:#x}", regs.r8, *vendor));
    if (stored != kProbePattern)
        wrong.push_back(fmt::format("memory at {:#x} holds {:#x}, not {:#x}", kProbeStore, stored,
                                    kProbePattern));
    if (!(sregs.efer & kEferLma) || !sregs.cs.l || sregs.cs.selector != 0x08)
        wrong.push_back(fmt::format("not in 64-bit mode (EFER {:#x}, cs {:#x}, cs.l {})",
                                    sregs.efer, sregs.cs.selector, sregs.cs.l));
    if (sregs.gs.base != kProbeGsBase)
        wrong.push_back(fmt::format("GS base {:#x}, not {:#x} (wrmsr {:#x})", sregs.gs.base,
                                    kProbeGsBase, kGsBaseMsr));
    if ((sregs.cr0 & (kCr0Pe | kCr0Pg)) != (kCr0Pe | kCr0Pg) || !(sregs.cr4 & kCr4Pae))
        wrong.push_back(
            fmt::format("cr0 {:#x} cr4 {:#x} lack PE, PG or PAE", sregs.cr0, sregs.cr4));
    if (!wrong.empty())
        return std::unexpected(
            fmt::format("the probe guest halted in the wrong state: {}", fmt::join(wrong, "; ")));
    return {};
}

std::expected<ProbeReport, std::string> probe_stock_guest(const char* kvm_path,
                                                          std::chrono::milliseconds limit) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) return std::unexpected(errno_text("pipe2"));
    UniqueFd reader(pipe_fds[0]), writer(pipe_fds[1]);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) return std::unexpected(errno_text("fork"));
    if (pid == 0) {
        auto r = run_probe_guest(kvm_path);
        const std::string text = r ? std::string("ok") : "error: " + r.error();
        (void)!::write(writer.get(), text.data(), text.size());
        ::_exit(r ? 0 : 1);
    }
    writer = UniqueFd();

    std::string text;
    bool finished = false;
    const auto deadline = start + limit;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{reader.get(), POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        char buffer[512];
        const ssize_t got = ::read(reader.get(), buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            finished = true;  // the child closed its end: it is exiting
            break;
        }
        text.append(buffer, static_cast<std::size_t>(got));
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    if (!finished) {
        ::kill(pid, SIGKILL);
        // A vCPU stuck in the kernel dies when KVM next looks at its signals; not waited for
        // beyond a moment (the caller's exit reaps it).
        for (int i = 0; i < 10 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return std::unexpected(fmt::format(
            "the probe guest (real mode to long mode, then OUT and HLT) did not finish within "
            "{} ms: KVM_RUN did not return",
            limit.count()));
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) < 0) return std::unexpected(errno_text("waitpid"));
    if (WIFSIGNALED(status))
        return std::unexpected(
            fmt::format("the probe process died of signal {}", WTERMSIG(status)));
    if (text == "ok" && WIFEXITED(status) && WEXITSTATUS(status) == 0) return ProbeReport{elapsed};
    if (text.starts_with("error: ")) return std::unexpected(text.substr(7));
    return std::unexpected(fmt::format("the probe process exited with status {} saying '{}'",
                                       WEXITSTATUS(status), text));
}

std::string describe_internal_error(uint32_t suberror) {
    const char* what = "";
    switch (suberror) {
        case KVM_INTERNAL_ERROR_EMULATION:
            what = " (KVM's instruction emulator failed)";
            break;
        case KVM_INTERNAL_ERROR_SIMUL_EX:
            what = " (an exception while delivering an exception)";
            break;
        case KVM_INTERNAL_ERROR_DELIVERY_EV:
            what = " (an event could not be delivered)";
            break;
        case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
            what = " (an exit reason KVM does not handle)";
            break;
        default:
            break;
    }
    return fmt::format(
        "KVM internal error, suberror {}{}; likely reasons: a KVM that runs only paravirtual "
        "guest kernels (kvm_pvm runs only PVM guests; `vfsdax-vmm --check-kvm` tells), a quirk "
        "of nested virtualization under the host's own hypervisor, or guest code KVM's "
        "instruction emulator cannot run",
        suberror, what);
}

}  // namespace vfsdax::vmm
