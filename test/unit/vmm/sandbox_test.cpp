// SPDX-License-Identifier: Apache-2.0
// Thread confinement: each class's filter stops what the class must not do and lets through
// what it does; capabilities per thread; workers launched from a vCPU get the server's set.
#include "sandbox.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bus.hpp"
#include "cmos.hpp"
#include "i8042.hpp"
#include "pci_host.hpp"
#include "serial.hpp"
#include "vfsdax/fs/file_system.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;
using vmm::confine_thread;
using vmm::SandboxPolicy;
using vmm::SeccompMode;
using vmm::ThreadClass;

namespace {

struct Ended {
    bool exited = false;
    int code = -1;
    int signal = 0;
};

// Runs `child` in a forked child (filters and capability changes are for good there), which
// exits with what it returns; how the child ended.
Ended run_forked(const std::function<int()>& child) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(child());
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    Ended ended;
    ended.exited = WIFEXITED(status);
    if (ended.exited) ended.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) ended.signal = WTERMSIG(status);
    return ended;
}

// Runs `body` in a forked child after confining the child's only thread as `cls`; the child
// exits 0 when `body` returns true.
Ended run_confined(ThreadClass cls, SeccompMode mode, const std::function<bool()>& body) {
    return run_forked([&] {
        if (!confine_thread(cls, SandboxPolicy{mode, fs::passthrough_capabilities()})) return 3;
        return body() ? 0 : 1;
    });
}

bool killed_by_sigsys(const Ended& ended) {
    return !ended.exited && ended.signal == SIGSYS;
}

bool exited_ok(const Ended& ended) {
    return ended.exited && ended.code == 0;
}

bool make_socket() {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
}

bool open_root() {
    const int fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/", O_PATH));
    if (fd >= 0) ::close(fd);
    return fd >= 0;
}

// A new process, as fork() makes one; the filter must stop it before it exists.
bool fork_raw() {
    const long pid = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    return pid > 0 && ::waitpid(static_cast<pid_t>(pid), nullptr, 0) == pid;
}

uint64_t status_field(const std::string& status, const std::string& name) {
    std::istringstream in(status);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name + ":", 0) == 0) return std::stoull(line.substr(name.size() + 1), 0, 16);
    }
    FAIL("no " << name << " in /proc/thread-self/status");
    return 0;
}

std::string thread_status() {
    std::ifstream in("/proc/thread-self/status");
    return std::string(std::istreambuf_iterator<char>(in), {});
}

uint64_t mask_of(std::initializer_list<int> caps) {
    uint64_t mask = 0;
    for (int cap : caps) mask |= uint64_t{1} << cap;
    return mask;
}

}  // namespace

TEST_CASE("each class's filter kills the process on a syscall outside its list", "[sandbox]") {
    // None of the classes has a socket, a process or an exec to make.
    for (ThreadClass cls : {ThreadClass::Vcpu, ThreadClass::EventLoop, ThreadClass::FileServer}) {
        INFO(vmm::thread_class_name(cls));
        CHECK(killed_by_sigsys(run_confined(cls, SeccompMode::Kill, make_socket)));
        CHECK(killed_by_sigsys(run_confined(cls, SeccompMode::Kill, fork_raw)));
        CHECK(killed_by_sigsys(run_confined(cls, SeccompMode::Kill, [] {
            char* const argv[] = {nullptr};
            ::execve("/bin/true", argv, argv);
            return false;
        })));
    }
    // Guest-facing threads open nothing (refused with EACCES: glibc opens files lazily on
    // their behalf and copes with a refusal); the file server does.
    auto open_refused = [] {
        const long fd = ::syscall(SYS_openat, AT_FDCWD, "/", O_PATH);
        return fd < 0 && errno == EACCES;
    };
    CHECK(exited_ok(run_confined(ThreadClass::Vcpu, SeccompMode::Kill, open_refused)));
    CHECK(exited_ok(run_confined(ThreadClass::EventLoop, SeccompMode::Kill, open_refused)));
    CHECK(exited_ok(run_confined(ThreadClass::FileServer, SeccompMode::Kill, open_root)));
}

TEST_CASE("a forbidden syscall is named on stderr with the thread class before SIGSYS",
          "[sandbox]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    // stderr is redirected before the filter, which does not let a vCPU thread dup2.
    const Ended ended = run_forked([&fds] {
        ::dup2(fds[1], STDERR_FILENO);
        if (!confine_thread(ThreadClass::Vcpu,
                            SandboxPolicy{SeccompMode::Kill, fs::passthrough_capabilities()}))
            return 3;
        return make_socket() ? 0 : 1;
    });
    ::close(fds[1]);
    std::string report;
    char buffer[256];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) report.append(buffer, n);
    ::close(fds[0]);
    CHECK(killed_by_sigsys(ended));
    CHECK(report == "vfsdax-vmm: error: seccomp: a vcpu thread made syscall " +
                        std::to_string(SYS_socket) +
                        ", which its filter forbids (docs/security.md; --seccomp log lists them "
                        "all)\n");
}

// Every port a vCPU thread emulates itself, read and written under the vCPU filter: device
// emulation must not reach for files or the C library's lazily loaded state (the CMOS clock
// once opened /etc/localtime through gmtime_r, and the vCPU thread died by SIGSYS).
TEST_CASE("the vCPU thread's own devices run under its filter", "[sandbox]") {
    auto emulate_all = [] {
        std::vector<std::byte> console;
        using namespace vfsdax::vmm;
        Serial8250 serial([](bool) {},
                          [&console](std::span<const std::byte> out) {
                              console.insert(console.end(), out.begin(), out.end());
                          });
        Cmos cmos;
        I8042 keyboard([] {});
        PciHostBridge pci([](uint32_t, bool) {});
        std::vector<BusDevice*> devices{&serial, &cmos, &keyboard, &pci};
        for (BusDevice* device : devices) {
            for (uint64_t offset = 0; offset < 8; ++offset) {
                for (uint8_t value : {uint8_t{0x00}, uint8_t{0x0b}, uint8_t{0x80}, uint8_t{0xff}}) {
                    std::byte b{value};
                    device->write(offset, std::span(&b, 1));
                    device->read(offset, std::span(&b, 1));
                }
            }
        }
        for (uint8_t index = 0; index < 0x80; ++index) {  // every CMOS register, clock included
            std::byte i{index}, v{};
            cmos.write(0, std::span(&i, 1));
            cmos.read(1, std::span(&v, 1));
        }
        return true;
    };
    CHECK(exited_ok(run_confined(ThreadClass::Vcpu, SeccompMode::Kill, emulate_all)));
}

// glibc's free() reads /proc/sys/vm/overcommit_memory the first time it shrinks a thread's
// arena: a vCPU thread that allocates and frees a lot, then ends, got there and died by SIGSYS.
TEST_CASE("a vCPU thread's arena trimming at exit survives its filter", "[sandbox]") {
    CHECK(exited_ok(run_forked([] {
        bool confined = false;
        std::thread([&confined] {
            confined =
                confine_thread(ThreadClass::Vcpu,
                               SandboxPolicy{SeccompMode::Kill, fs::passthrough_capabilities()})
                    .has_value();
            std::vector<std::unique_ptr<char[]>> blocks;
            for (int round = 0; round < 4; ++round) {
                for (int i = 0; i < 2048; ++i) blocks.push_back(std::make_unique<char[]>(4096));
                blocks.clear();
            }
            ::malloc_trim(0);
        }).join();
        return confined ? 0 : 1;
    })));
}

TEST_CASE("ioctl: KVM requests pass, a terminal's TIOCSTI does not", "[sandbox]") {
    // On no descriptor at all: the filter judges the request before the kernel sees the fd.
    auto kvm_request = [] { return ::ioctl(-1, _IO(0xAE, 0x00), 0) < 0 && errno == EBADF; };
    auto tiocsti = [] {
        const char c = 'x';
        return ::ioctl(-1, TIOCSTI, &c) < 0 && errno == EBADF;
    };
    for (ThreadClass cls : {ThreadClass::Vcpu, ThreadClass::EventLoop, ThreadClass::FileServer}) {
        INFO(vmm::thread_class_name(cls));
        CHECK(exited_ok(run_confined(cls, SeccompMode::Kill, kvm_request)));
        CHECK(killed_by_sigsys(run_confined(cls, SeccompMode::Kill, tiocsti)));
        CHECK(exited_ok(run_confined(cls, SeccompMode::Log, tiocsti)));
    }
    // The event loop restores the console's terminal mode at exit.
    CHECK(exited_ok(run_confined(ThreadClass::EventLoop, SeccompMode::Kill, [] {
        termios mode{};
        return ::tcgetattr(-1, &mode) != 0 && errno == EBADF &&
               ::tcsetattr(-1, TCSANOW, &mode) != 0 && errno == EBADF;
    })));
}

TEST_CASE("each class makes the syscalls its work needs under its filter", "[sandbox]") {
    // A doorbell made when the guest moves a BAR; the DAX repair's probe of a page.
    CHECK(exited_ok(run_confined(ThreadClass::Vcpu, SeccompMode::Kill, [] {
        const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) return false;
        char byte = 1, copy = 0;
        iovec local{&copy, 1}, remote{&byte, 1};
        const bool probed = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == 1;
        ::close(fd);
        return probed && copy == 1;
    })));
    // A device reset releases the guest's POSIX locks wherever it runs; nothing else of fcntl.
    for (ThreadClass cls : {ThreadClass::Vcpu, ThreadClass::EventLoop}) {
        INFO(vmm::thread_class_name(cls));
        CHECK(exited_ok(run_confined(cls, SeccompMode::Kill, [] {
            struct flock unlock {};
            unlock.l_type = F_UNLCK;
            return ::fcntl(-1, F_OFD_SETLK, &unlock) != 0 && errno == EBADF;
        })));
        CHECK(killed_by_sigsys(run_confined(cls, SeccompMode::Kill,
                                            [] { return ::fcntl(2, F_DUPFD_CLOEXEC, 0) >= 0; })));
    }
    // A thread, through glibc's clone3-then-clone fallback; the per-thread umask; new threads
    // may name themselves.
    CHECK(exited_ok(run_confined(ThreadClass::FileServer, SeccompMode::Kill, [] {
        bool ran = false;
        std::thread([&ran] {
            ran = ::unshare(CLONE_FS) == 0 && pthread_setname_np(pthread_self(), "confined") == 0;
        }).join();
        return ran;
    })));
    // Only CLONE_FS may be unshared.
    CHECK(killed_by_sigsys(run_confined(ThreadClass::FileServer, SeccompMode::Kill,
                                        [] { return ::unshare(CLONE_NEWNS) == 0; })));
}

TEST_CASE("log mode lets a syscall outside the list through; off loads no filter", "[sandbox]") {
    for (ThreadClass cls : {ThreadClass::Vcpu, ThreadClass::EventLoop, ThreadClass::FileServer}) {
        INFO(vmm::thread_class_name(cls));
        CHECK(exited_ok(run_confined(cls, SeccompMode::Log, make_socket)));
        CHECK(exited_ok(run_confined(cls, SeccompMode::Off, make_socket)));
        // no_new_privs whatever the mode.
        CHECK(exited_ok(run_confined(cls, SeccompMode::Off, [] {
            return ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 &&
                   ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0;
        })));
    }
}

TEST_CASE("capabilities are per thread: the file server keeps its set, others none", "[sandbox]") {
    if (::geteuid() != 0) {
        WARN("not running as root: capability sets not checked");
        return;
    }
    const SandboxPolicy policy{SeccompMode::Off, {CAP_CHOWN, CAP_SETUID, CAP_SETGID}};
    const uint64_t server_set = mask_of({CAP_CHOWN, CAP_SETUID, CAP_SETGID});
    auto confined_status = [&](ThreadClass cls) {
        std::string status;
        bool confined = false;
        std::thread([&] {
            confined = confine_thread(cls, policy).has_value();
            status = thread_status();
        }).join();
        REQUIRE(confined);
        return status;
    };
    const std::string server = confined_status(ThreadClass::FileServer);
    CHECK(status_field(server, "CapEff") == server_set);
    CHECK(status_field(server, "CapPrm") == server_set);
    CHECK(status_field(server, "CapInh") == 0);
    CHECK(status_field(server, "CapBnd") == server_set);
    for (ThreadClass cls : {ThreadClass::Vcpu, ThreadClass::EventLoop}) {
        INFO(vmm::thread_class_name(cls));
        const std::string status = confined_status(cls);
        CHECK(status_field(status, "CapEff") == 0);
        CHECK(status_field(status, "CapPrm") == 0);
        CHECK(status_field(status, "CapBnd") == 0);
    }
    // This thread, which confined nothing, still has CAP_SYS_ADMIN.
    CHECK((status_field(thread_status(), "CapEff") & mask_of({CAP_SYS_ADMIN})) != 0);
}

TEST_CASE("a thread launched from a vCPU thread is a file server", "[sandbox]") {
    const bool root = ::geteuid() == 0;
    // Forked: the filters stay with the threads' process.
    CHECK(exited_ok(run_forked([root] {
        const SandboxPolicy policy{SeccompMode::Kill, {CAP_CHOWN, CAP_SETUID, CAP_SETGID}};
        auto launcher = vmm::ThreadLauncher::start(policy);
        if (!launcher) return 3;
        bool server_ok = false;
        std::thread vcpu([&] {
            if (!confine_thread(ThreadClass::Vcpu, policy)) _exit(4);
            // Opening a file would kill a vCPU thread; the launched thread may, and holds
            // the file server's capabilities, which this thread no longer has.
            (*launcher)
                ->launch([&] {
                    server_ok = open_root();
                    if (root) {
                        const std::string status = thread_status();
                        server_ok = server_ok && status_field(status, "CapEff") ==
                                                     mask_of({CAP_CHOWN, CAP_SETUID, CAP_SETGID});
                    }
                })
                .join();
        });
        vcpu.join();
        return server_ok ? 0 : 1;
    })));
}

// vfsdax-vmm's order: the process drops to the server's set (plus CAP_SYS_ADMIN for a share
// with xattr-trusted=on, plus CAP_SETPCAP), then a launcher confined as a file server starts a
// worker, which starts a thread of its own (a requester); trusted.* names need CAP_SYS_ADMIN
// on each of them.
TEST_CASE("a launched worker and its own threads keep CAP_SYS_ADMIN for trusted.* xattrs",
          "[sandbox]") {
    if (::geteuid() != 0) {
        WARN("not root: trusted.* needs CAP_SYS_ADMIN; not checked");
        return;
    }
    const std::filesystem::path file =
        std::filesystem::temp_directory_path() / ("vfsdax-trusted-" + std::to_string(::getpid()));
    std::ofstream(file).put('x');
    if (::setxattr(file.c_str(), "trusted.vfsdax_probe", "1", 1, 0) != 0) {
        WARN("this host file system stores no trusted.* names; not checked");
        std::filesystem::remove(file);
        return;
    }
    const Ended ended = run_forked([&file] {
        const std::vector<int> keep_also{CAP_SYS_ADMIN, CAP_SETPCAP};
        if (!fs::drop_capabilities(keep_also)) return 3;
        SandboxPolicy policy{SeccompMode::Kill, fs::passthrough_capabilities()};
        policy.file_server_capabilities.push_back(CAP_SYS_ADMIN);
        auto launcher = vmm::ThreadLauncher::start(policy);
        if (!launcher) return 4;
        auto set_trusted = [&file](const char* value) {
            return ::setxattr(file.c_str(), "trusted.vfsdax_test", value, 1, 0) == 0;
        };
        bool worker_ok = false, requester_ok = false;
        (*launcher)
            ->launch([&] {
                worker_ok = set_trusted("w");
                std::thread([&] { requester_ok = set_trusted("r"); }).join();
            })
            .join();
        return worker_ok && requester_ok ? 0 : 1;
    });
    std::filesystem::remove(file);
    CHECK(exited_ok(ended));
}

TEST_CASE("the passthrough backend serves a guest under the file server's filter", "[sandbox]") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("vfsdax-sandbox-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    ::chmod(dir.c_str(), 0777);
    // Every answer is checked; a missing syscall shows as SIGSYS.
    const Ended ended = run_confined(ThreadClass::FileServer, SeccompMode::Kill, [&] {
        auto backend = fs::make_passthrough({.root = dir.string()});
        if (!backend) return false;
        fs::FileSystem& f = **backend;
        const uint32_t groups[] = {3456};
        const fs::RequestContext user{1234, 2345, 77, groups};
        constexpr fs::NodeId root = 1;
        if (!f.init({})) return false;
        auto created = f.create(user, root, "file", 0644, 022, O_RDWR | O_CREAT);
        if (!created) return false;
        const fs::NodeId node = created->entry.nodeid;
        const fs::FileHandle fh = created->open.fh;
        char data[] = "hello";
        iovec out{data, 5};
        if (f.write(user, node, fh, 0, {&out, 1}, false) != 5u) return false;
        char back[8] = {};
        iovec in{back, sizeof(back)};
        if (f.read(user, node, fh, 0, {&in, 1}) != 5u) return false;
        if (!f.fsync(user, node, fh, true) || !f.flush(user, node, fh, 7)) return false;
        if (!f.setlk(user, node, fh, 7, fs::Lock{0, 10, F_WRLCK, 77}, false)) return false;
        if (!f.getlk(user, node, fh, 8, fs::Lock{0, 10, F_RDLCK, 78})) return false;
        if (!f.fallocate(user, node, fh, 0, 4096, 0)) return false;
        if (!f.lseek(user, node, fh, 0, SEEK_DATA)) return false;
        fs::SetAttrIn truncate{};
        truncate.valid = FATTR_SIZE | FATTR_MODE;
        truncate.size = 3;
        truncate.mode = S_IFREG | 0600;
        if (!f.setattr(user, node, truncate)) return false;
        // xattrs may be unsupported by the host file system: any answer but SIGSYS will do.
        const std::byte value[] = {std::byte{1}};
        (void)f.setxattr(user, node, "user.test", value, 0);
        std::byte buffer[64];
        (void)f.getxattr(user, node, "user.test", buffer);
        (void)f.listxattr(user, node, buffer);
        (void)f.removexattr(user, node, "user.test");
        f.release(user, node, fh, O_RDWR, false, 7);
        if (!f.mkdir(user, root, "dir", 0755, 022)) return false;
        if (!f.symlink(user, root, "link", "file")) return false;
        if (!f.mknod(user, root, "fifo", S_IFIFO | 0644, 0, 022)) return false;
        if (!f.link(user, node, root, "hard")) return false;
        if (!f.rename(user, root, "hard", root, "moved", 0)) return false;
        if (!f.lookup(user, root, "link") || !f.access(user, node, R_OK)) return false;
        if (!f.tmpfile(user, root, 0600, 022, O_RDWR)) return false;
        if (!f.statfs(user, root)) return false;
        auto opened = f.opendir(user, root, 0);
        if (!opened) return false;
        struct Sink final : fs::DirSink {
            bool add(const fs::DirEntry&, const fs::Entry*) override { return ++count < 100; }
            int count = 0;
        } sink;
        if (!f.readdirplus(user, root, opened->fh, 0, sink) || sink.count < 5) return false;
        f.releasedir(user, root, opened->fh);
        if (!f.unlink(user, root, "moved") || !f.rmdir(user, root, "dir")) return false;
        if (!f.syncfs(user)) return false;
        f.destroy();
        return true;
    });
    std::filesystem::remove_all(dir);
    CHECK(exited_ok(ended));
}
