// SPDX-License-Identifier: Apache-2.0
// DAX fault handler: the SIGBUS/SIGSEGV handler and the lock-free list of windows it may repair.
#include "vfsdax/fs/dax_fault_handler.hpp"

#include <sched.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>

#include "dax/fault_windows.hpp"
#include "vfsdax/fs/dax_mapper.hpp"

namespace vfsdax::fs {

namespace {

// Read by the handler without locks; written by DaxMapper creation and destruction. A handler
// counts itself in `users` before it loads the mapper and out after its last use, and the
// destructor waits for that count to drop after clearing the slot, so a mapper is never
// destroyed under a handler that is using it. Both sides use sequentially consistent order:
// either the handler sees the slot cleared, or the destructor sees the handler counted.
struct Slot {
    std::atomic<DaxMapper*> mapper{nullptr};
    std::atomic<int> users{0};
};
std::array<Slot, kMaxFaultWindows> g_windows{};
// What each signal did before: where a fault outside every window goes.
struct sigaction g_previous_sigbus {};
struct sigaction g_previous_sigsegv {};

void on_window_fault(int signal, siginfo_t* info, void* context) {
    const int saved_errno = errno;
    for (Slot& slot : g_windows) {
        slot.users.fetch_add(1);
        DaxMapper* mapper = slot.mapper.load();
        const bool zeroed = mapper != nullptr && mapper->zero_faulting_page(info->si_addr);
        slot.users.fetch_sub(1);
        if (zeroed) {
            errno = saved_errno;
            return;  // the access runs again, on zeros
        }
    }
    errno = saved_errno;
    const struct sigaction& previous = signal == SIGBUS ? g_previous_sigbus : g_previous_sigsegv;
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(signal, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal);
    } else {
        // Returning re-runs the access, which now raises the signal with its default action.
        ::signal(signal, SIG_DFL);
    }
}

}  // namespace

bool watch_for_faults(DaxMapper* mapper) {
    for (Slot& slot : g_windows) {
        DaxMapper* empty = nullptr;
        if (slot.mapper.compare_exchange_strong(empty, mapper)) return true;
    }
    return false;
}

void unwatch_for_faults(DaxMapper* mapper) {
    for (Slot& slot : g_windows) {
        DaxMapper* expected = mapper;
        if (!slot.mapper.compare_exchange_strong(expected, nullptr)) continue;
        // A handler that loaded the mapper before the slot was cleared finishes first: one
        // page's mmap, so the wait is short. A handler on this very thread cannot be inside
        // it (the destructor is not called from the handler).
        while (slot.users.load() != 0) sched_yield();
        return;
    }
}

std::expected<void, int> install_dax_fault_handler() {
    static std::mutex mutex;
    static bool installed = false;
    std::lock_guard lock(mutex);
    if (installed) return {};
    struct sigaction action {};
    action.sa_sigaction = on_window_fault;
    // SA_ONSTACK: a thread that set up an alternate signal stack (say, to report stack
    // overflows) gets the handler there, as it asked.
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (::sigaction(SIGBUS, &action, &g_previous_sigbus) != 0) return std::unexpected(errno);
    if (::sigaction(SIGSEGV, &action, &g_previous_sigsegv) != 0) {
        const int error = errno;
        ::sigaction(SIGBUS, &g_previous_sigbus, nullptr);
        return std::unexpected(error);
    }
    installed = true;
    return {};
}

}  // namespace vfsdax::fs
