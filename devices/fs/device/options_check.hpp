// SPDX-License-Identifier: Apache-2.0
// Validation of FsDeviceOptions before a device is built from them.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "vfsdax/fs/fs_device.hpp"

namespace vfsdax::fs::device {

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_utf8(std::string_view s);

std::expected<void, std::string> check_options(const FsDeviceOptions& options);

}  // namespace vfsdax::fs::device
