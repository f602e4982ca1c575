// SPDX-License-Identifier: Apache-2.0
// The i8042 reset command.
#include "i8042.hpp"

#include <algorithm>

namespace vfsdax::vmm {

void I8042::read(uint64_t, std::span<std::byte> data) {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (!data.empty()) data[0] = std::byte{kI8042StatusOutputFull};
}

void I8042::write(uint64_t, std::span<const std::byte> data) {
    if (data.size() == 1 && static_cast<uint8_t>(data[0]) == kI8042CmdResetLine) on_reset_();
}

}  // namespace vfsdax::vmm
