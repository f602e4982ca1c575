// SPDX-License-Identifier: Apache-2.0
// KVM smoke check for the e2e rig: runs real-mode code in a fresh VM and checks every exit.
//
// Proves that /dev/kvm (native, or nested inside the rig's QEMU-TCG L1 guest) runs guest
// code with memory and port I/O working, before any VMM is involved. Exit 0 on success,
// 1 with a reason on stderr otherwise.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what);
}

[[noreturn]] void fail_errno(const std::string& what) {
    fail(what + ": " + std::strerror(errno));
}

// Owns a file descriptor so every early failure still closes it.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// Owns an mmap'ed range.
class Mapping {
public:
    Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() {
        if (addr_ != MAP_FAILED) ::munmap(addr_, len_);
    }
    void* get() const { return addr_; }

private:
    void* addr_;
    size_t len_;
};

constexpr uint64_t kMemSize = 0x10000;
constexpr uint64_t kCodeAddr = 0x1000;
constexpr uint64_t kDataAddr = 0x2000;
constexpr uint16_t kPort = 0x3f8;
constexpr uint64_t kRbx = 40;
constexpr uint8_t kExpected = kRbx + 2;

// Real mode: compute rbx + 2, store it to memory, write it to a port, halt. Each step
// depends on the previous, so a correct exit sequence means the guest really executed.
constexpr uint8_t kCode[] = {
    0xba, 0xf8, 0x03,  // mov dx, 0x3f8
    0x88, 0xd8,        // mov al, bl
    0x04, 0x02,        // add al, 2
    0xa2, 0x00, 0x20,  // mov [0x2000], al
    0xee,              // out dx, al
    0xf4,              // hlt
};

const char* exit_name(uint32_t reason) {
    switch (reason) {
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    default: return "other";
    }
}

void run_smoke(const char* dev) {
    Fd kvm(::open(dev, O_RDWR | O_CLOEXEC));
    if (kvm.get() < 0) fail_errno(std::string("open ") + dev);
    int api = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        fail("KVM_GET_API_VERSION returned " + std::to_string(api) + ", want " +
             std::to_string(KVM_API_VERSION));
    if (::ioctl(kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
        fail("KVM_CAP_USER_MEMORY is missing");

    Fd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (vm.get() < 0) fail_errno("KVM_CREATE_VM");

    Mapping mem(::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                kMemSize);
    if (mem.get() == MAP_FAILED) fail_errno("mmap guest memory");
    auto* bytes = static_cast<uint8_t*>(mem.get());
    std::memcpy(bytes + kCodeAddr, kCode, sizeof kCode);

    kvm_userspace_memory_region region{};
    region.slot = 0;
    region.guest_phys_addr = 0;
    region.memory_size = kMemSize;
    region.userspace_addr = reinterpret_cast<uint64_t>(bytes);
    if (::ioctl(vm.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        fail_errno("KVM_SET_USER_MEMORY_REGION");

    Fd vcpu(::ioctl(vm.get(), KVM_CREATE_VCPU, 0));
    if (vcpu.get() < 0) fail_errno("KVM_CREATE_VCPU");
    int run_size = ::ioctl(kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < static_cast<int>(sizeof(kvm_run))) fail_errno("KVM_GET_VCPU_MMAP_SIZE");
    Mapping run_map(::mmap(nullptr, static_cast<size_t>(run_size), PROT_READ | PROT_WRITE, MAP_SHARED,
                           vcpu.get(), 0),
                    static_cast<size_t>(run_size));
    if (run_map.get() == MAP_FAILED) fail_errno("mmap kvm_run");
    auto* run = static_cast<kvm_run*>(run_map.get());

    kvm_sregs sregs{};
    if (::ioctl(vcpu.get(), KVM_GET_SREGS, &sregs) < 0) fail_errno("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = 0;
    sregs.ds.selector = 0;
    if (::ioctl(vcpu.get(), KVM_SET_SREGS, &sregs) < 0) fail_errno("KVM_SET_SREGS");
    kvm_regs regs{};
    regs.rip = kCodeAddr;
    regs.rbx = kRbx;
    regs.rflags = 0x2;  // bit 1 is reserved and must be set
    if (::ioctl(vcpu.get(), KVM_SET_REGS, &regs) < 0) fail_errno("KVM_SET_REGS");

    auto enter = [&](const char* want) {
        if (::ioctl(vcpu.get(), KVM_RUN, 0) < 0) fail_errno(std::string("KVM_RUN (waiting for ") + want + ")");
    };

    auto start = std::chrono::steady_clock::now();
    enter("IO");
    if (run->exit_reason != KVM_EXIT_IO)
        fail(std::string("first exit is ") + exit_name(run->exit_reason) + " (" +
             std::to_string(run->exit_reason) + "), want IO");
    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != kPort || run->io.size != 1 ||
        run->io.count != 1)
        fail("IO exit: direction " + std::to_string(run->io.direction) + " port " +
             std::to_string(run->io.port) + " size " + std::to_string(run->io.size) + " count " +
             std::to_string(run->io.count) + ", want OUT to 0x3f8, 1 byte, once");
    uint8_t out = *(reinterpret_cast<uint8_t*>(run) + run->io.data_offset);
    if (out != kExpected)
        fail("OUT wrote " + std::to_string(out) + ", want " + std::to_string(kExpected));
    if (bytes[kDataAddr] != kExpected)
        fail("guest memory at 0x2000 holds " + std::to_string(bytes[kDataAddr]) + ", want " +
             std::to_string(kExpected));

    enter("HLT");
    if (run->exit_reason != KVM_EXIT_HLT)
        fail(std::string("second exit is ") + exit_name(run->exit_reason) + " (" +
             std::to_string(run->exit_reason) + "), want HLT");
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (::ioctl(vcpu.get(), KVM_GET_REGS, &regs) < 0) fail_errno("KVM_GET_REGS");
    if (regs.rip != kCodeAddr + sizeof kCode)
        fail("rip after HLT is " + std::to_string(regs.rip) + ", want " +
             std::to_string(kCodeAddr + sizeof kCode));
    std::printf("kvm_smoke: OUT 0x3f8 <- %u, memory write seen, HLT at rip 0x%llx; guest ran in %lld us\n",
                static_cast<unsigned>(out), static_cast<unsigned long long>(regs.rip),
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 2) {
        std::fprintf(stderr, "usage: %s [/dev/kvm]\n", argv[0]);
        return 2;
    }
    const char* dev = argc == 2 ? argv[1] : "/dev/kvm";
    try {
        run_smoke(dev);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvm_smoke: FAIL: %s\n", e.what());
        return 1;
    }
    return 0;
}
