// SPDX-License-Identifier: Apache-2.0
// I8042: just enough of the keyboard controller for Linux's reboot=k reset line.
#pragma once

#include <functional>

#include "bus.hpp"

namespace vfsdax::vmm {

inline constexpr uint8_t kI8042CmdResetLine = 0xfe;  // pulse the CPU reset line
inline constexpr uint8_t kI8042StatusOutputFull = 0x01;

// Inserted on the PIO bus at the command/status port 0x64 alone (0x61, in between, belongs to
// KVM's in-kernel PIT). The status register reads "output buffer full, input buffer empty":
// the reset loop's kb_wait() (input buffer empty) passes at once, and Linux's i8042 probe,
// whose flush never drains the output buffer, concludes quickly that there is no controller.
class I8042 : public BusDevice {
public:
    explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    std::function<void()> on_reset_;
};

}  // namespace vfsdax::vmm
