// SPDX-License-Identifier: Apache-2.0
// The windows the DAX fault handler may repair: DaxMapper adds itself on creation.
#pragma once

#include <cstddef>

namespace vfsdax::fs {

class DaxMapper;

// Windows one process can have watched at once; DaxMapper::create fails with EMFILE beyond.
inline constexpr std::size_t kMaxFaultWindows = 64;

// Lock-free, so the SIGBUS handler can read the list at any moment. false: the list is full.
bool watch_for_faults(DaxMapper* mapper);
void unwatch_for_faults(DaxMapper* mapper);

}  // namespace vfsdax::fs
