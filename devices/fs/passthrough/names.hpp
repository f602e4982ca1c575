// SPDX-License-Identifier: Apache-2.0
// Checks on the names the guest sends: one path component that cannot climb out of a directory.
#pragma once

#include <expected>
#include <string_view>

namespace vfsdax::fs::passthrough {

// A name that may be created, removed or renamed: not empty, no '/', no NUL, at most NAME_MAX
// bytes, and neither "." nor "..". Errors: EINVAL, ENAMETOOLONG.
std::expected<void, int> check_new_name(std::string_view name);

// A name that may be looked up: the same, except that "." and ".." are allowed (the caller
// resolves them itself so that ".." of the root is the root).
std::expected<void, int> check_lookup_name(std::string_view name);

inline bool is_dot_or_dotdot(std::string_view name) {
    return name == "." || name == "..";
}

}  // namespace vfsdax::fs::passthrough
