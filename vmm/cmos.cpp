// SPDX-License-Identifier: Apache-2.0
// MC146818 register reads from the host clock.
#include "cmos.hpp"

#include <algorithm>
#include <chrono>

namespace vfsdax::vmm {

using namespace cmos;

namespace {
// The registers that show the host's time; the alarm registers (1, 3, 5) are plain RAM.
bool is_clock(uint8_t index) {
    return index == kSeconds || index == kMinutes || index == kHours ||
           (index >= kWeekday && index <= kYear) || index == kCentury;
}
}  // namespace

Cmos::Cmos(Clock clock) : clock_(std::move(clock)) {
    ram_[kRegA] = kRegADivider;
    ram_[kRegB] = kRegB24Hour;
    ram_[kRegD] = kRegDValid;
}

void Cmos::read(uint64_t offset, std::span<std::byte> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    std::fill(data.begin(), data.end(), std::byte{0});
    data[0] = std::byte{offset == 0 ? index_ : read_register(index_)};
}

void Cmos::write(uint64_t offset, std::span<const std::byte> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    const uint8_t value = static_cast<uint8_t>(data[0]);
    if (offset == 0) {
        index_ = value & 0x7f;
    } else if (index_ == kRegA) {
        ram_[kRegA] = value & 0x7f;  // UIP (bit 7) is read-only
    } else if (!is_clock(index_) && index_ != kRegC && index_ != kRegD) {
        ram_[index_] = value;
    }
}

uint8_t Cmos::read_register(uint8_t index) {
    if (!is_clock(index)) {
        // Register C's flags clear on read; no alarm or periodic interrupt is ever raised.
        return index == kRegC ? 0 : ram_[index];
    }
    // The civil UTC date by arithmetic: glibc's gmtime_r loads the time zone on first use
    // (/etc/localtime), a file a vCPU thread's seccomp filter does not let it open.
    using namespace std::chrono;
    const sys_seconds now{seconds{clock_()}};
    const sys_days today = floor<days>(now);
    const year_month_day date{today};
    const hh_mm_ss time{now - today};
    const bool binary = ram_[kRegB] & kRegBBinary;
    auto encode = [binary](int v) {
        return static_cast<uint8_t>(binary ? v : ((v / 10) << 4) | (v % 10));
    };
    switch (index) {
        case kSeconds:
            return encode(static_cast<int>(time.seconds().count()));
        case kMinutes:
            return encode(static_cast<int>(time.minutes().count()));
        case kHours:
            return encode(static_cast<int>(time.hours().count()));
        case kWeekday:
            return encode(static_cast<int>(weekday{today}.c_encoding()) + 1);
        case kDay:
            return encode(static_cast<int>(static_cast<unsigned>(date.day())));
        case kMonth:
            return encode(static_cast<int>(static_cast<unsigned>(date.month())));
        case kYear:
            return encode(static_cast<int>(date.year()) % 100);
        case kCentury:
            return encode(static_cast<int>(date.year()) / 100);
        default:
            return 0;
    }
}

}  // namespace vfsdax::vmm
