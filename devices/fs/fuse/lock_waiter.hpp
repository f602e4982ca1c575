// SPDX-License-Identifier: Apache-2.0
// LockWaiter: SETLKW requests waiting for a conflicting lock, retried off the worker pool.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vfsdax::fs::fuse {

// Retry intervals when no nudge comes: `first` after a request parks, doubling up to `longest`.
// `longest` bounds how late a host holder's unlock is noticed, and sets the wake-ups per second
// while a request waits on one (10 at 100 ms; the old fixed 10 ms tick made 100, parked or not).
struct LockFallback {
    std::chrono::milliseconds first{10};
    std::chrono::milliseconds longest{100};
};

// A blocked lock must not hold a worker thread, and the backend's setlk never blocks, so a
// waiting request parks here: one thread, started by the first park() (on the worker serving
// it), retries every parked attempt whenever a lock may have been released. The server says
// so (nudge()) after each release it performs: SETLK, FLUSH, RELEASE; a granted attempt may
// have released part of its owner's range, so it starts another pass itself. A host process
// releases without telling anyone, and no file descriptor becomes readable when it does:
// that case alone is covered by a timer, which backs off while nothing changes, and runs
// only while a request is parked. With nothing parked the thread sleeps until park() or
// stop(); it never polls.
class LockWaiter {
public:
    // Returns EAGAIN while the lock is still held, else the final result (0 or an errno).
    using Attempt = std::function<int()>;
    // Sends the reply for the final result; called once, from the waiter thread or cancel().
    using Finish = std::function<void(int error)>;

    // Outside the class: g++ cannot default an argument to a nested struct with member
    // initializers.
    using Fallback = LockFallback;

    // The thread is named `thread_name` (util/thread_name.hpp) when it starts.
    explicit LockWaiter(std::string thread_name, Fallback fallback = {})
        : thread_name_(std::move(thread_name)), fallback_(fallback) {}
    ~LockWaiter() { stop(); }
    LockWaiter(const LockWaiter&) = delete;
    LockWaiter& operator=(const LockWaiter&) = delete;

    void park(uint64_t unique, Attempt attempt, Finish finish);
    // A lock was released somewhere: retry now.
    void nudge();
    // FUSE_INTERRUPT: finishes the waiter for `unique` with EINTR; nothing if none waits.
    void cancel(uint64_t unique);
    // Drops every waiter without finishing it and joins the thread (session reset). A park()
    // racing it is served by a new thread.
    void stop();

private:
    struct Waiter {
        uint64_t unique;
        Attempt attempt;
        Finish finish;
    };
    // Loops until stop() moves `generation_` past `generation`: a thread started by a park()
    // racing stop() has a generation of its own, so the one being joined still sees its end.
    void run(uint64_t generation);

    const std::string thread_name_;
    const Fallback fallback_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::list<Waiter> waiters_;
    // Interrupts that arrived while their waiter was out for a retry pass.
    std::vector<uint64_t> cancelled_in_pass_;
    bool in_pass_ = false;
    bool nudged_ = false;
    std::chrono::milliseconds interval_{0};  // the fallback's next wait
    uint64_t generation_ = 0;
    std::thread thread_;
};

}  // namespace vfsdax::fs::fuse
