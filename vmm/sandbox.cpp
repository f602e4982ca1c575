// SPDX-License-Identifier: Apache-2.0
// Per-thread confinement: capability sets through raw capget/capset, libseccomp filters.
#include "sandbox.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <span>
#include <system_error>
#include <utility>

namespace vfsdax::vmm {

namespace {

// Every class: memory (malloc, DAX window maps), locks and joins, signals (the vCPU kick, the
// DAX fault handler, abort), time (a syscall where the clocksource has no vDSO, as in nested
// guests), writes to the console and the log, closing descriptors, exit.
constexpr int kCommon[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),
    SCMP_SYS(brk),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    SCMP_SYS(mremap),
    SCMP_SYS(futex),
    SCMP_SYS(sched_yield),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(tgkill),
    SCMP_SYS(gettid),
    SCMP_SYS(getpid),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(time),
    SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getrandom),
    SCMP_SYS(process_vm_readv),
};

// KVM_RUN and the VM's ioctls (BAR moves, interrupts, register reads for reports); doorbell
// eventfds made and watched when the guest moves a BAR.
constexpr int kVcpu[] = {
    SCMP_SYS(eventfd2),
    SCMP_SYS(epoll_ctl),
};

constexpr int kEventLoop[] = {
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
};

// The passthrough backend's host file system calls, the per-request credentials and umask,
// the DAX window's msync, and starting the requester and lock-waiter threads.
constexpr int kFileServer[] = {
    SCMP_SYS(openat),
    SCMP_SYS(openat2),
    SCMP_SYS(open_by_handle_at),
    SCMP_SYS(name_to_handle_at),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2),
    SCMP_SYS(statx),
    SCMP_SYS(fstatfs),
    SCMP_SYS(statfs),
    SCMP_SYS(getdents64),
    SCMP_SYS(mkdirat),
    SCMP_SYS(mknodat),
    SCMP_SYS(unlinkat),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(linkat),
    SCMP_SYS(symlinkat),
    SCMP_SYS(readlinkat),
    SCMP_SYS(fchmod),
    SCMP_SYS(fchmodat),
    SCMP_SYS(fchown),
    SCMP_SYS(fchownat),
    SCMP_SYS(utimensat),
    SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(syncfs),
    SCMP_SYS(sync_file_range),
    SCMP_SYS(copy_file_range),
    SCMP_SYS(fadvise64),
    SCMP_SYS(fcntl),
    SCMP_SYS(flock),
    SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2),
    SCMP_SYS(dup),
    SCMP_SYS(dup3),
    SCMP_SYS(getxattr),
    SCMP_SYS(lgetxattr),
    SCMP_SYS(fgetxattr),
    SCMP_SYS(setxattr),
    SCMP_SYS(lsetxattr),
    SCMP_SYS(fsetxattr),
    SCMP_SYS(listxattr),
    SCMP_SYS(llistxattr),
    SCMP_SYS(flistxattr),
    SCMP_SYS(removexattr),
    SCMP_SYS(lremovexattr),
    SCMP_SYS(fremovexattr),
    SCMP_SYS(setresuid),
    SCMP_SYS(setresgid),
    SCMP_SYS(setgroups),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(umask),
    SCMP_SYS(getrlimit),
    SCMP_SYS(msync),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    // SETATTR's chmod through /proc/self/fd, and the other path-based forms glibc may pick.
    SCMP_SYS(chmod),
    SCMP_SYS(chown),
    SCMP_SYS(lchown),
    SCMP_SYS(mkdir),
    SCMP_SYS(rmdir),
    SCMP_SYS(unlink),
    SCMP_SYS(rename),
    SCMP_SYS(link),
    SCMP_SYS(symlink),
    SCMP_SYS(readlink),
    SCMP_SYS(access),
    SCMP_SYS(truncate),
    SCMP_SYS(stat),
    SCMP_SYS(lstat),
};

// The ioctl type of every KVM request (_IO(KVMIO, nr) and friends): the other ioctls a
// descriptor may answer to, a terminal's TIOCSTI above all, stay out.
constexpr uint64_t kKvmIoctlType = 0xAE;
constexpr uint64_t kIoctlTypeMask = 0xff00;

// Kill mode traps rather than kills: the handler below names the thread class and the syscall,
// then the process dies by SIGSYS all the same. A bare kill leaves only "Bad system call".
uint32_t default_action(SeccompMode mode) {
    return mode == SeccompMode::Log ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
}

thread_local const char* t_thread_class = "unconfined";

// Async-signal-safe: fixed buffers, write(2), then SIGSYS again with its default action.
void report_forbidden_syscall(int, siginfo_t* info, void*) {
    char number[16];
    int n = sizeof number;
    unsigned value = static_cast<unsigned>(info->si_syscall);
    do {
        number[--n] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value != 0 && n > 0);
    constexpr char kHead[] = "vfsdax-vmm: error: seccomp: a ";
    constexpr char kMiddle[] = " thread made syscall ";
    constexpr char kTail[] =
        ", which its filter forbids (docs/security.md; --seccomp log lists them all)\n";
    const iovec parts[] = {
        {const_cast<char*>(kHead), sizeof kHead - 1},
        {const_cast<char*>(t_thread_class), std::strlen(t_thread_class)},
        {const_cast<char*>(kMiddle), sizeof kMiddle - 1},
        {number + n, sizeof number - static_cast<std::size_t>(n)},
        {const_cast<char*>(kTail), sizeof kTail - 1},
    };
    [[maybe_unused]] ssize_t written = ::writev(STDERR_FILENO, parts, std::size(parts));
    struct sigaction fatal {};
    fatal.sa_handler = SIG_DFL;
    ::sigaction(SIGSYS, &fatal, nullptr);
    ::raise(SIGSYS);
}

std::expected<void, std::string> install_syscall_reporter() {
    struct sigaction report {};
    report.sa_sigaction = report_forbidden_syscall;
    report.sa_flags = SA_SIGINFO;
    sigemptyset(&report.sa_mask);
    if (::sigaction(SIGSYS, &report, nullptr) != 0)
        return std::unexpected(fmt::format("sigaction(SIGSYS): {}", std::strerror(errno)));
    return {};
}

std::string seccomp_error(std::string_view what, int rc) {
    return fmt::format("seccomp: {}: {}", what, std::strerror(-rc));
}

std::expected<void, std::string> add_all(scmp_filter_ctx ctx, std::span<const int> syscalls) {
    for (int nr : syscalls) {
        if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc != 0) {
            char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
            std::string error = seccomp_error(name ? name : std::to_string(nr), rc);
            std::free(name);
            return std::unexpected(error);
        }
    }
    return {};
}

// A comparison on syscall argument `index`, every field set (libseccomp's SCMP_A* macros leave
// the second datum out of two-operand forms, which clang's -Wmissing-field-initializers flags).
constexpr scmp_arg_cmp arg(unsigned index, scmp_compare op, uint64_t a, uint64_t b = 0) {
    return scmp_arg_cmp{index, op, a, b};
}

std::expected<void, std::string> add_rule(scmp_filter_ctx ctx, uint32_t action, int nr,
                                          std::string_view name,
                                          std::initializer_list<scmp_arg_cmp> args) {
    const int rc =
        seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()), args.begin());
    if (rc != 0) return std::unexpected(seccomp_error(name, rc));
    return {};
}

std::expected<void, std::string> add_class_rules(scmp_filter_ctx ctx, ThreadClass cls,
                                                 SeccompMode mode) {
    if (auto r = add_all(ctx, kCommon); !r) return r;
    auto kvm_ioctls = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), "ioctl",
                               {arg(1, SCMP_CMP_MASKED_EQ, kIoctlTypeMask, kKvmIoctlType << 8)});
    if (!kvm_ioctls) return kvm_ioctls;
    if (cls != ThreadClass::FileServer && mode == SeccompMode::Kill) {
        // These threads open no files of their own, but glibc does on their behalf, once per
        // process and lazily: free() reads /proc/sys/vm/overcommit_memory the first time it
        // trims a thread's arena (a vCPU thread's exit), gmtime_r loads /etc/localtime. It
        // copes with a refusal (no trim, UTC), so opens fail with EACCES instead of killing.
        for (auto [nr, name] :
             {std::pair{SCMP_SYS(openat), "openat"}, std::pair{SCMP_SYS(open), "open"}}) {
            if (auto r = add_rule(ctx, SCMP_ACT_ERRNO(EACCES), nr, name, {}); !r) return r;
        }
    }
    if (cls != ThreadClass::FileServer) {
        // A device reset, from the guest on a vCPU or at exit on the event loop, releases the
        // guest's POSIX locks on the host (PosixLocks::clear) before closing their files.
        if (auto r = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), "fcntl",
                              {arg(1, SCMP_CMP_EQ, F_OFD_SETLK)});
            !r)
            return r;
    }
    switch (cls) {
        case ThreadClass::Vcpu:
            return add_all(ctx, kVcpu);
        case ThreadClass::EventLoop: {
            if (auto r = add_all(ctx, kEventLoop); !r) return r;
            // The console's terminal mode is restored at exit, and isatty asks for it.
            for (uint64_t request : {uint64_t{TCGETS}, uint64_t{TCSETS}}) {
                if (auto r = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), "ioctl",
                                      {arg(1, SCMP_CMP_EQ, request)});
                    !r)
                    return r;
            }
            return {};
        }
        case ThreadClass::FileServer: {
            if (auto r = add_all(ctx, kFileServer); !r) return r;
            // Threads only: a fork would copy the VMM with its guest memory and descriptors.
            if (auto r = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), "clone",
                                  {arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
                !r)
                return r;
            // clone3's flags sit in memory a filter cannot read; glibc falls back to clone.
            if (auto r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), "clone3", {}); !r)
                return r;
            // The per-thread umask: a private fs_struct, nothing else unshared.
            if (auto r = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unshare), "unshare",
                                  {arg(0, SCMP_CMP_EQ, CLONE_FS)});
                !r)
                return r;
            if (auto r = add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), "prctl",
                                  {arg(0, SCMP_CMP_EQ, PR_SET_NAME)});
                !r)
                return r;
            // Reading the fd limit only.
            return add_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), "prlimit64",
                            {arg(2, SCMP_CMP_EQ, 0)});
        }
    }
    return {};
}

std::expected<void, std::string> load_filter(ThreadClass cls, SeccompMode mode) {
    scmp_filter_ctx ctx = seccomp_init(default_action(mode));
    if (!ctx) return std::unexpected(std::string("seccomp: cannot allocate a filter"));
    auto added = add_class_rules(ctx, cls, mode);
    // Without SCMP_FLTATR_CTL_TSYNC (off by default) the filter binds this thread only.
    if (added) {
        if (int rc = seccomp_load(ctx); rc != 0) added = std::unexpected(seccomp_error("load", rc));
    }
    seccomp_release(ctx);
    return added;
}

struct ThreadCaps {
    uint64_t effective = 0;
    uint64_t permitted = 0;
};

// Raw syscalls with pid 0: the calling thread's sets, which libcap-ng's process-wide view
// (getpid) does not give on a thread other than the first.
std::expected<ThreadCaps, int> get_thread_caps() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) return std::unexpected(errno);
    return ThreadCaps{data[0].effective | uint64_t{data[1].effective} << 32,
                      data[0].permitted | uint64_t{data[1].permitted} << 32};
}

std::expected<void, int> set_thread_caps(uint64_t caps) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int i = 0; i < 2; ++i) {
        data[i].effective = data[i].permitted = static_cast<uint32_t>(caps >> (32 * i));
    }
    if (::syscall(SYS_capset, &header, data) != 0) return std::unexpected(errno);
    return {};
}

std::expected<void, std::string> set_class_caps(ThreadClass cls, const SandboxPolicy& policy) {
    auto now = get_thread_caps();
    if (!now) return std::unexpected(fmt::format("capget: {}", std::strerror(now.error())));
    uint64_t keep = 0;
    if (cls == ThreadClass::FileServer) {
        for (int cap : policy.file_server_capabilities) keep |= uint64_t{1} << cap;
    }
    // An unprivileged VMM keeps what it has of them, which is nothing.
    keep &= now->permitted;
    if (now->effective & (uint64_t{1} << CAP_SETPCAP)) {
        for (int cap = 0; cap < 64; ++cap) {
            if (keep & (uint64_t{1} << cap)) continue;
            // EINVAL: a capability this kernel does not know.
            if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
                return std::unexpected(fmt::format("PR_CAPBSET_DROP: {}", std::strerror(errno)));
            }
        }
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return std::unexpected(fmt::format("PR_CAP_AMBIENT: {}", std::strerror(errno)));
    }
    if (auto r = set_thread_caps(keep); !r) {
        return std::unexpected(fmt::format("capset: {}", std::strerror(r.error())));
    }
    return {};
}

}  // namespace

std::string_view thread_class_name(ThreadClass cls) {
    switch (cls) {
        case ThreadClass::Vcpu:
            return "vcpu";
        case ThreadClass::EventLoop:
            return "event-loop";
        case ThreadClass::FileServer:
            return "file-server";
    }
    return "?";
}

std::expected<void, std::string> confine_thread(ThreadClass cls, const SandboxPolicy& policy) {
    auto failed = [cls](const std::string& why) {
        return std::unexpected(fmt::format("{} thread: {}", thread_class_name(cls), why));
    };
    if (auto r = set_class_caps(cls, policy); !r) return failed(r.error());
    // Set even without a filter: nothing this VMM runs may gain privileges by exec.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return failed(fmt::format("PR_SET_NO_NEW_PRIVS: {}", std::strerror(errno)));
    }
    if (policy.seccomp == SeccompMode::Off) return {};
    if (policy.seccomp == SeccompMode::Kill) {
        if (auto r = install_syscall_reporter(); !r) return failed(r.error());
    }
    t_thread_class = thread_class_name(cls).data();
    if (auto r = load_filter(cls, policy.seccomp); !r) return failed(r.error());
    return {};
}

struct ThreadLauncher::Order {
    std::function<void()> body;
    std::thread thread;
    std::exception_ptr error;
    bool done = false;
};

std::expected<std::unique_ptr<ThreadLauncher>, std::string> ThreadLauncher::start(
    const SandboxPolicy& policy) {
    std::unique_ptr<ThreadLauncher> launcher(new ThreadLauncher());
    ThreadLauncher* self = launcher.get();
    try {
        launcher->thread_ = std::thread([self, policy] { self->serve(policy); });
    } catch (const std::system_error& e) {
        return std::unexpected(fmt::format("thread launcher: {}", e.what()));
    }
    std::unique_lock lock(launcher->mutex_);
    launcher->wake_.wait(lock, [self] { return self->ready_; });
    if (!launcher->failure_.empty()) {
        std::string why = launcher->failure_;
        lock.unlock();
        return std::unexpected(why);
    }
    return launcher;
}

ThreadLauncher::~ThreadLauncher() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

std::thread ThreadLauncher::launch(std::function<void()> body) {
    Order order{std::move(body), {}, {}, false};
    std::unique_lock lock(mutex_);
    orders_.push_back(&order);
    wake_.notify_all();
    wake_.wait(lock, [&order] { return order.done; });
    if (order.error) std::rethrow_exception(order.error);
    return std::move(order.thread);
}

void ThreadLauncher::serve(const SandboxPolicy& policy) {
    // Before confining: the filter's audit records (comm=) then name the launcher.
    pthread_setname_np(pthread_self(), "vfsdax-launch");
    auto confined = confine_thread(ThreadClass::FileServer, policy);
    std::unique_lock lock(mutex_);
    ready_ = true;
    if (!confined) failure_ = confined.error();
    wake_.notify_all();
    if (!confined) return;
    while (true) {
        wake_.wait(lock, [this] { return stopping_ || !orders_.empty(); });
        if (orders_.empty()) return;
        Order* order = orders_.front();
        orders_.pop_front();
        lock.unlock();
        try {
            order->thread = std::thread(std::move(order->body));
        } catch (const std::system_error&) {
            order->error = std::current_exception();
        }
        lock.lock();
        order->done = true;
        wake_.notify_all();
    }
}

}  // namespace vfsdax::vmm
