// LockWaiter: the retry loop for parked SETLKW requests.
#include "fuse/lock_waiter.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace vfsdax::fs::fuse {

namespace {
// Host processes release locks without telling us; this bounds how late we notice.
constexpr auto kRetryInterval = std::chrono::milliseconds(10);
}  // namespace

void LockWaiter::park(uint64_t unique, Attempt attempt, Finish finish) {
    std::lock_guard lock(mutex_);
    waiters_.push_back({unique, std::move(attempt), std::move(finish)});
    if (!thread_.joinable()) {
        stopping_ = false;
        in_pass_ = false;
        cancelled_in_pass_.clear();
        thread_ = std::thread([this] { run(); });
    }
    nudged_ = true;
    wake_.notify_one();
}

void LockWaiter::nudge() {
    std::lock_guard lock(mutex_);
    if (waiters_.empty()) return;
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
        stopping_ = true;
        waiters_.clear();
        thread = std::move(thread_);
        wake_.notify_one();
    }
    if (thread.joinable()) thread.join();
}

void LockWaiter::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kRetryInterval, [this] { return nudged_ || stopping_; });
        nudged_ = false;
        // Each pass takes the list out, so attempts and replies run without the mutex (they
        // may be slow, and cancel() must not wait for them); survivors go back in order.
        std::list<Waiter> pass;
        pass.swap(waiters_);
        in_pass_ = true;
        lock.unlock();
        for (auto it = pass.begin(); it != pass.end();) {
            const int result = it->attempt();
            if (result == EAGAIN) {
                ++it;
                continue;
            }
            it->finish(result);
            it = pass.erase(it);
        }
        lock.lock();
        if (stopping_) break;
        for (auto it = pass.begin(); it != pass.end();) {
            if (std::erase(cancelled_in_pass_, it->unique) == 0) {
                ++it;
                continue;
            }
            lock.unlock();
            it->finish(EINTR);
            lock.lock();
            it = pass.erase(it);
        }
        cancelled_in_pass_.clear();
        in_pass_ = false;
        waiters_.splice(waiters_.begin(), pass);
    }
}

}  // namespace vfsdax::fs::fuse
