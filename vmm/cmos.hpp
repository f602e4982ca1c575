// SPDX-License-Identifier: Apache-2.0
// Cmos: the MC146818 RTC and CMOS RAM at ports 0x70/0x71, so Linux's rtc_cmos probe finds a
// clock instead of spinning on an update-in-progress bit that never clears.
#pragma once

#include <array>
#include <ctime>
#include <functional>
#include <mutex>

#include "bus.hpp"

namespace vfsdax::vmm {

namespace cmos {
inline constexpr uint8_t kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kWeekday = 0x06,
                         kDay = 0x07, kMonth = 0x08, kYear = 0x09, kRegA = 0x0a, kRegB = 0x0b,
                         kRegC = 0x0c, kRegD = 0x0d, kCentury = 0x32;
inline constexpr uint8_t kRegB24Hour = 0x02, kRegBBinary = 0x04;
inline constexpr uint8_t kRegADivider = 0x26;  // 32.768 kHz base, 1024 Hz rate; UIP clear
inline constexpr uint8_t kRegDValid = 0x80;    // battery good: RAM and time valid
}  // namespace cmos

// Inserted on the PIO bus at 0x70 with size 2: index (bit 7 is the NMI mask, ignored) at
// offset 0, data at offset 1. The clock reads the host's UTC time (BCD unless register B asks
// for binary); writes to the time registers are ignored, the rest is 128 bytes of RAM.
class Cmos : public BusDevice {
public:
    using Clock = std::function<std::time_t()>;
    explicit Cmos(Clock clock = [] { return std::time(nullptr); });

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    uint8_t read_register(uint8_t index);

    Clock clock_;
    std::mutex mutex_;
    uint8_t index_ = 0;
    std::array<uint8_t, 128> ram_{};
};

}  // namespace vfsdax::vmm
