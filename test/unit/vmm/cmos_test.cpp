// SPDX-License-Identifier: Apache-2.0
// CMOS RTC: the host's UTC time in BCD or binary, update-in-progress never set, RAM bytes.
#include "cmos.hpp"

#include <catch2/catch.hpp>

using namespace vfsdax::vmm;
using namespace vfsdax::vmm::cmos;

namespace {

struct Rtc {
    // 2024-02-29 23:59:58 UTC, a Thursday.
    Cmos cmos{[] { return std::time_t{1709251198}; }};
    uint8_t get(uint8_t index) {
        const std::byte i{index};
        cmos.write(0, std::span(&i, 1));
        std::byte v{0xee};
        cmos.read(1, std::span(&v, 1));
        return static_cast<uint8_t>(v);
    }
    void set(uint8_t index, uint8_t value) {
        const std::byte i{index}, v{value};
        cmos.write(0, std::span(&i, 1));
        cmos.write(1, std::span(&v, 1));
    }
};

}  // namespace

TEST_CASE("time registers read the clock in BCD by default") {
    Rtc r;
    CHECK(r.get(kSeconds) == 0x58);
    CHECK(r.get(kMinutes) == 0x59);
    CHECK(r.get(kHours) == 0x23);
    CHECK(r.get(kWeekday) == 0x05);
    CHECK(r.get(kDay) == 0x29);
    CHECK(r.get(kMonth) == 0x02);
    CHECK(r.get(kYear) == 0x24);
    CHECK(r.get(kCentury) == 0x20);
}

TEST_CASE("register B's binary mode switches the encoding; time writes are ignored") {
    Rtc r;
    r.set(kRegB, kRegB24Hour | kRegBBinary);
    CHECK(r.get(kRegB) == (kRegB24Hour | kRegBBinary));
    CHECK(r.get(kSeconds) == 58);
    CHECK(r.get(kDay) == 29);
    r.set(kSeconds, 3);
    CHECK(r.get(kSeconds) == 58);
}

TEST_CASE("status registers: UIP never set, RTC valid, no interrupt flags") {
    Rtc r;
    CHECK((r.get(kRegA) & 0x80) == 0);
    r.set(kRegA, 0xff);
    CHECK(r.get(kRegA) == 0x7f);
    CHECK(r.get(kRegC) == 0);
    CHECK(r.get(kRegD) == kRegDValid);
    r.set(kRegD, 0);
    CHECK(r.get(kRegD) == kRegDValid);
}

TEST_CASE("other bytes are RAM; the index ignores the NMI mask bit") {
    Rtc r;
    r.set(0x40, 0xab);
    CHECK(r.get(0x40) == 0xab);
    CHECK(r.get(0x80 | 0x40) == 0xab);
    r.set(0x01, 0x30);  // seconds alarm
    CHECK(r.get(0x01) == 0x30);
    const std::byte index{0x40};
    r.cmos.write(0, std::span(&index, 1));
    std::byte back{};
    r.cmos.read(0, std::span(&back, 1));
    CHECK(back == index);
}
