// SPDX-License-Identifier: Apache-2.0
// LockWaiter: the retry loop for parked SETLKW requests.
#include "fuse/lock_waiter.hpp"

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "util/thread_name.hpp"

namespace vfsdax::fs::fuse {

void LockWaiter::park(uint64_t unique, Attempt attempt, Finish finish) {
    std::lock_guard lock(mutex_);
    waiters_.push_back({unique, std::move(attempt), std::move(finish)});
    // A new holder may be a host process: look again soon, then less often.
    interval_ = fallback_.first;
    if (!thread_.joinable()) {
        in_pass_ = false;
        cancelled_in_pass_.clear();
        thread_ = std::thread([this, generation = generation_] { run(generation); });
    }
    nudged_ = true;
    wake_.notify_one();
}

void LockWaiter::nudge() {
    std::lock_guard lock(mutex_);
    // During a pass the waiters are out of the list, and the attempt that just failed may
    // have raced this release: the nudge is kept for another pass.
    if (waiters_.empty() && !in_pass_) return;
    nudged_ = true;
    wake_.notify_one();
}

void LockWaiter::cancel(uint64_t unique) {
    Finish finish;
    {
        std::lock_guard lock(mutex_);
        for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
            if (it->unique == unique) {
                finish = std::move(it->finish);
                waiters_.erase(it);
                break;
            }
        }
        if (!finish && in_pass_) cancelled_in_pass_.push_back(unique);
    }
    if (finish) finish(EINTR);
}

void LockWaiter::stop() {
    std::thread thread;
    {
        std::lock_guard lock(mutex_);
        ++generation_;
        waiters_.clear();
        thread = std::move(thread_);
        // A thread started by a racing park() may wait on the same condition.
        wake_.notify_all();
    }
    if (thread.joinable()) thread.join();
}

void LockWaiter::run(uint64_t generation) {
    name_this_thread(thread_name_);
    std::unique_lock lock(mutex_);
    for (;;) {
        const auto woken = [&] { return nudged_ || generation_ != generation; };
        if (waiters_.empty()) {
            wake_.wait(lock, woken);
        } else if (!wake_.wait_for(lock, interval_, woken)) {
            // Nothing in the server changed since the last pass: only a host process can
            // have let go, and one that has not yet may hold on for long.
            interval_ = std::min(interval_ * 2, fallback_.longest);
        }
        // Checked before taking the nudge, which may be meant for the next thread.
        if (generation_ != generation) break;
        nudged_ = false;
        // Each pass takes the list out, so attempts and replies run without the mutex (they
        // may be slow, and cancel() must not wait for them); survivors go back in order.
        std::list<Waiter> pass;
        pass.swap(waiters_);
        in_pass_ = true;
        lock.unlock();
        bool granted = false;
        for (auto it = pass.begin(); it != pass.end();) {
            const int result = it->attempt();
            if (result == EAGAIN) {
                ++it;
                continue;
            }
            granted = granted || result == 0;
            it->finish(result);
            it = pass.erase(it);
        }
        lock.lock();
        if (generation_ != generation) break;
        // Sorted out in one go under the mutex: once it is let go, a stop() may have ended
        // this thread's generation and the shared state is no longer its own.
        std::list<Waiter> interrupted;
        for (auto it = pass.begin(); it != pass.end();) {
            const auto next = std::next(it);
            if (std::erase(cancelled_in_pass_, it->unique) != 0) {
                interrupted.splice(interrupted.end(), pass, it);
            }
            it = next;
        }
        cancelled_in_pass_.clear();
        in_pass_ = false;
        waiters_.splice(waiters_.begin(), pass);
        // A granted lock replaces its owner's old ones over its range (a read lock over a
        // write lock lets readers in): the others are tried again at once.
        if (granted && !waiters_.empty()) nudged_ = true;
        if (interrupted.empty()) continue;
        lock.unlock();
        for (Waiter& waiter : interrupted) waiter.finish(EINTR);
        lock.lock();
    }
}

}  // namespace vfsdax::fs::fuse
