// SPDX-License-Identifier: Apache-2.0
// RequesterThreads: the library's own threads that act as a guest's requester (uid, gid,
// groups, umask) for the syscalls that create files or check access.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace vfsdax::fs::passthrough {

// Credentials and the umask are per thread only when a thread makes them so (raw setresuid,
// unshare(CLONE_FS)); a library that did that on whatever thread called FuseServer::handle
// would change its caller's threads. These threads are started here, serve nothing else, and
// are the only ones the passthrough backend ever switches.
//
// A thread that cannot get root back after a job (setresuid/setresgid/setgroups failing, say
// under a seccomp filter or with capabilities taken away meanwhile) is not trusted with the
// next requester: the job reports EIO and the thread ends, taking its credentials with it; the
// next job starts a fresh one.
class RequesterThreads {
public:
    // At most `max_threads` jobs run at once; threads start on demand and stay.
    explicit RequesterThreads(unsigned max_threads);
    ~RequesterThreads();
    RequesterThreads(const RequesterThreads&) = delete;
    RequesterThreads& operator=(const RequesterThreads&) = delete;

    struct Identity {
        uid_t uid = 0;
        gid_t gid = 0;
        std::span<const gid_t> groups;
        mode_t umask = 0;
    };
    // Runs `work` on one of these threads as `who` and waits for it. Errors: the switch's
    // (EINVAL for the id -1, EPERM when the kernel refused it), EIO when the thread could not
    // get its own credentials back afterwards or no thread could be started.
    std::expected<void, int> run(const Identity& who, const std::function<void()>& work);

private:
    struct Job;
    void serve();
    // Starts one more thread when every running one is busy; false when none could start.
    bool ensure_thread();

    const unsigned max_threads_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job*> queue_;
    std::vector<std::thread> threads_;  // ended ones are joined when the next one starts
    std::vector<std::thread::id> ended_;
    unsigned running_ = 0;  // threads started and not ended
    unsigned idle_ = 0;     // of those, how many wait for a job
    bool stopping_ = false;
};

}  // namespace vfsdax::fs::passthrough
