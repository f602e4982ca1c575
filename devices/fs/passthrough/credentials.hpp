// SPDX-License-Identifier: Apache-2.0
// ScopedCredentials: this thread acts as the guest's uid/gid while a file is being created.
#pragma once

#include <sys/types.h>

#include <expected>
#include <span>

namespace vfsdax::fs::passthrough {

// Switches the calling thread's effective uid, gid and supplementary groups, and restores root's
// on destruction. Only the calling thread changes: the raw syscalls are used because glibc's
// wrappers broadcast the change to every thread of the process. Used only on the backend's own
// threads (RequesterThreads), never on a caller's.
//
// Only meaningful when the process runs as root; `switch_to` is a no-op otherwise (the files
// are then owned by whoever runs the server, as for any unprivileged process).
class ScopedCredentials {
public:
    // EINVAL for the id -1, which setresuid/setresgid take as "unchanged" (root's, here).
    static std::expected<ScopedCredentials, int> switch_to(uid_t uid, gid_t gid,
                                                           std::span<const gid_t> groups);

    ScopedCredentials(ScopedCredentials&& other) noexcept;
    ScopedCredentials& operator=(ScopedCredentials&&) = delete;
    ScopedCredentials(const ScopedCredentials&) = delete;
    ScopedCredentials& operator=(const ScopedCredentials&) = delete;
    ~ScopedCredentials();

    // Whether this thread once failed to get root's credentials back (when a switch undid
    // itself or on destruction): it may still act as some guest user and must act for no one
    // else. Its owner ends it; nothing here aborts the process.
    static bool lost();

private:
    explicit ScopedCredentials(bool active) : active_(active) {}
    bool active_ = false;
};

}  // namespace vfsdax::fs::passthrough
