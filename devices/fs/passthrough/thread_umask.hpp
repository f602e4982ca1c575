// SPDX-License-Identifier: Apache-2.0
// A umask for the calling thread only, so each request creates files with its own caller's.
#pragma once

#include <sys/types.h>

#include <expected>

namespace vfsdax::fs::passthrough {

// The first call on a thread unshares that thread's fs attributes (CLONE_FS: cwd, root, umask)
// from the rest of the process; from then on umask(2) there touches no other thread. Called
// only on the backend's own threads (RequesterThreads): a caller's thread would otherwise be
// left with fs attributes of its own, its umask the last request's.
std::expected<void, int> set_thread_umask(mode_t mask);

}  // namespace vfsdax::fs::passthrough
