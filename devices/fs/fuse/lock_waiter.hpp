// SPDX-License-Identifier: Apache-2.0
// LockWaiter: SETLKW requests waiting for a conflicting lock, retried off the worker pool.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace vfsdax::fs::fuse {

// A blocked lock must not hold a worker thread, and the backend's setlk never blocks, so a
// waiting request parks here: one thread retries every parked attempt whenever a lock may have
// been released (nudge()) and on a short timer otherwise (the holder may be a host process).
class LockWaiter {
public:
    // Returns EAGAIN while the lock is still held, else the final result (0 or an errno).
    using Attempt = std::function<int()>;
    // Sends the reply for the final result; called once, from the waiter thread or cancel().
    using Finish = std::function<void(int error)>;

    LockWaiter() = default;
    ~LockWaiter() { stop(); }
    LockWaiter(const LockWaiter&) = delete;
    LockWaiter& operator=(const LockWaiter&) = delete;

    void park(uint64_t unique, Attempt attempt, Finish finish);
    // A lock was released somewhere: retry now rather than at the next tick.
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

    std::mutex mutex_;
    std::condition_variable wake_;
    std::list<Waiter> waiters_;
    // Interrupts that arrived while their waiter was out for a retry pass.
    std::vector<uint64_t> cancelled_in_pass_;
    bool in_pass_ = false;
    bool nudged_ = false;
    uint64_t generation_ = 0;
    std::thread thread_;
};

}  // namespace vfsdax::fs::fuse
