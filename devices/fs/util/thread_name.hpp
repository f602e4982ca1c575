// SPDX-License-Identifier: Apache-2.0
// Names of the threads libvfsdax-fs owns: fs:TAG:ROLE, cut to the kernel's 15 bytes.
#pragma once

#include <string>
#include <string_view>

namespace vfsdax::fs {

// The kernel keeps 15 bytes of a thread's name (comm, TASK_COMM_LEN less the NUL); the rest is
// silently dropped, so the cut is made here where it can keep what matters: the role whole
// (which worker, the lock waiter) and as much of the tag as fits, never half a UTF-8 character.
// Without a tag: fs:ROLE.
inline constexpr std::size_t kThreadNameMax = 15;
std::string thread_name(std::string_view tag, std::string_view role);

// Names the calling thread. Best effort: an embedder's seccomp filter may refuse
// prctl(PR_SET_NAME), and a thread without its name still works.
void name_this_thread(const std::string& name);

}  // namespace vfsdax::fs
