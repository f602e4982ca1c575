// SPDX-License-Identifier: Apache-2.0
// Name checks for guest-supplied path components.
#include "passthrough/names.hpp"

#include <limits.h>

#include <cerrno>

namespace vfsdax::fs::passthrough {

std::expected<void, int> check_lookup_name(std::string_view name) {
    if (name.empty()) return std::unexpected(EINVAL);
    if (name.size() > NAME_MAX) return std::unexpected(ENAMETOOLONG);
    // A '/' would make the kernel walk several components, a NUL would silently cut the name.
    if (name.find('/') != std::string_view::npos) return std::unexpected(EINVAL);
    if (name.find('\0') != std::string_view::npos) return std::unexpected(EINVAL);
    return {};
}

std::expected<void, int> check_new_name(std::string_view name) {
    if (auto ok = check_lookup_name(name); !ok) return ok;
    if (is_dot_or_dotdot(name)) return std::unexpected(EINVAL);
    return {};
}

}  // namespace vfsdax::fs::passthrough
