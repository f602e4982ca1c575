// DAX fault handler: the SIGBUS/SIGSEGV handler and the lock-free list of windows it may repair.
#include "vfsdax/fs/dax_fault_handler.hpp"

#include <signal.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>

#include "dax/fault_windows.hpp"
#include "vfsdax/fs/dax_mapper.hpp"

namespace vfsdax::fs {

namespace {

// Read by the handler without locks; written by DaxMapper creation and destruction.
std::array<std::atomic<DaxMapper*>, kMaxFaultWindows> g_windows{};
// What each signal did before: where a fault outside every window goes.
struct sigaction g_previous_sigbus {};
struct sigaction g_previous_sigsegv {};

void on_window_fault(int signal, siginfo_t* info, void* context) {
    const int saved_errno = errno;
    for (auto& slot : g_windows) {
        DaxMapper* mapper = slot.load(std::memory_order_acquire);
        if (mapper != nullptr && mapper->zero_faulting_page(info->si_addr)) {
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
    for (auto& slot : g_windows) {
        DaxMapper* empty = nullptr;
        if (slot.compare_exchange_strong(empty, mapper, std::memory_order_acq_rel)) return true;
    }
    return false;
}

void unwatch_for_faults(DaxMapper* mapper) {
    for (auto& slot : g_windows) {
        DaxMapper* expected = mapper;
        if (slot.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) return;
    }
}

std::expected<void, int> install_dax_fault_handler() {
    static std::mutex mutex;
    static bool installed = false;
    std::lock_guard lock(mutex);
    if (installed) return {};
    struct sigaction action {};
    action.sa_sigaction = on_window_fault;
    action.sa_flags = SA_SIGINFO;
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
