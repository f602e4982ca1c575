// SPDX-License-Identifier: Apache-2.0
// Per-thread confinement of vfsdax-vmm: capabilities and a seccomp filter per thread class.
#pragma once

#include <condition_variable>
#include <deque>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vfsdax::vmm {

// Capabilities, seccomp filters and no_new_privs are per thread, and a thread passes its own to
// the threads it creates, which may only narrow them. docs/security.md lists what each class
// keeps and why.
enum class ThreadClass {
    Vcpu,        // KVM_RUN and guest MMIO/PIO; also the DAX scan thread, which runs the same
                 // repairs a vCPU runs after an EFAULT
    EventLoop,   // the thread that calls Machine::run(): console, doorbells, signals, teardown
    FileServer,  // an fs device's workers and the threads they start (requester, lock waiter)
};

enum class SeccompMode {
    Kill,  // a syscall outside the class's list is reported (class, number) on stderr and
           // kills the process with SIGSYS
    Log,   // it is allowed and the kernel logs it (audit type 1326): for tuning the lists
    Off,   // no filter; capabilities and no_new_privs still apply
};

struct SandboxPolicy {
    SeccompMode seccomp = SeccompMode::Kill;
    // Kept by FileServer threads when the process has them; every other class keeps none.
    std::vector<int> file_server_capabilities;
};

std::string_view thread_class_name(ThreadClass cls);

// Confines the calling thread as `cls`: its effective, permitted and inheritable capabilities
// become the class's (and so does its bounding set while it holds CAP_SETPCAP), ambient ones
// go, no_new_privs is set and the class's filter is loaded for this thread only. Call it first
// thing in the thread, and never on a thread that will still create threads of another class.
// It leaves the thread's name alone: whoever writes a thread's body names it (before this, so
// seccomp's audit records carry the name), and a name says more than the class would: which
// vCPU, which share's worker (fs:TAG:N, the library's), the launcher. A thread the launcher
// creates carries "vfsdax-launch" until its body renames itself.
std::expected<void, std::string> confine_thread(ThreadClass cls, const SandboxPolicy& policy);

// A FileServer thread that creates threads on request. An fs device starts its workers while a
// vCPU thread handles the guest's DRIVER_OK write, and that thread has neither the
// capabilities nor the filter the workers need to inherit; this one does.
class ThreadLauncher {
public:
    static std::expected<std::unique_ptr<ThreadLauncher>, std::string> start(
        const SandboxPolicy& policy);
    ~ThreadLauncher();
    ThreadLauncher(const ThreadLauncher&) = delete;
    ThreadLauncher& operator=(const ThreadLauncher&) = delete;

    // Runs `body` on a new thread created by the launcher; throws std::system_error as
    // std::thread's constructor does. Fits FsDeviceOptions::start_thread.
    std::thread launch(std::function<void()> body);

private:
    struct Order;
    ThreadLauncher() = default;
    void serve(const SandboxPolicy& policy);

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Order*> orders_;
    bool stopping_ = false;
    bool ready_ = false;
    std::string failure_;  // why the launcher thread could not confine itself
    std::thread thread_;
};

}  // namespace vfsdax::vmm
