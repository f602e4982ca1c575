// SPDX-License-Identifier: Apache-2.0
// RequesterThreads: a small pool of threads that switch to a requester's identity per job.
#include "passthrough/requester_threads.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "passthrough/credentials.hpp"
#include "passthrough/thread_umask.hpp"
#include "util/thread_name.hpp"

namespace vfsdax::fs::passthrough {

struct RequesterThreads::Job {
    const Identity& who;
    const std::function<void()>& work;
    std::expected<void, int> result;
    bool done = false;
    std::condition_variable finished;
};

namespace {

// One job on the calling (own) thread; `lost` says the thread must end.
std::expected<void, int> act_as(const RequesterThreads::Identity& who,
                                const std::function<void()>& work, bool& lost) {
    std::expected<void, int> result;
    if (auto umask = set_thread_umask(who.umask); !umask) {
        result = std::unexpected(umask.error());
    } else if (auto creds = ScopedCredentials::switch_to(who.uid, who.gid, who.groups); !creds) {
        result = std::unexpected(creds.error());
    } else {
        work();
    }
    // Checked after `creds` restored root's credentials (or switch_to tried to undo itself).
    lost = ScopedCredentials::lost();
    if (lost) return std::unexpected(EIO);
    return result;
}

}  // namespace

RequesterThreads::RequesterThreads(unsigned max_threads)
    : max_threads_(std::max(max_threads, 1u)) {}

RequesterThreads::~RequesterThreads() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
}

std::expected<void, int> RequesterThreads::run(const Identity& who,
                                               const std::function<void()>& work) {
    Job job{who, work, {}, false, {}};
    std::unique_lock lock(mutex_);
    // Threads that ended have marked themselves and hold nothing: joining them is quick.
    for (std::thread::id id : ended_) {
        auto it =
            std::ranges::find_if(threads_, [id](const std::thread& t) { return t.get_id() == id; });
        it->join();
        threads_.erase(it);
    }
    ended_.clear();
    if (!ensure_thread()) return std::unexpected(EIO);
    queue_.push_back(&job);
    wake_.notify_one();
    job.finished.wait(lock, [&] { return job.done; });
    return job.result;
}

bool RequesterThreads::ensure_thread() {
    if (idle_ > queue_.size() || running_ >= max_threads_) return true;
    try {
        threads_.emplace_back([this] { serve(); });
    } catch (const std::system_error&) {
        return running_ > 0;  // a busy thread will take the job in its turn
    }
    ++running_;
    return true;
}

void RequesterThreads::serve() {
    // The backend knows no device tag; every passthrough backend's threads share this name.
    name_this_thread(thread_name({}, "requester"));
    std::unique_lock lock(mutex_);
    while (true) {
        ++idle_;
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        --idle_;
        if (queue_.empty()) break;
        Job* job = queue_.front();
        queue_.pop_front();
        lock.unlock();
        bool lost = false;
        auto result = act_as(job->who, job->work, lost);
        lock.lock();
        job->result = result;
        job->done = true;
        job->finished.notify_one();
        if (lost) break;
    }
    --running_;
    ended_.push_back(std::this_thread::get_id());
    // Jobs queued behind this one need a thread; when none can start and none runs, they fail.
    if (!queue_.empty() && !stopping_ && !ensure_thread()) {
        for (Job* job : queue_) {
            job->result = std::unexpected(EIO);
            job->done = true;
            job->finished.notify_one();
        }
        queue_.clear();
    }
}

}  // namespace vfsdax::fs::passthrough
