// SPDX-License-Identifier: Apache-2.0
// Bus: ranges never overlap, accesses reach the owning device at their offset, or nothing.
#include "bus.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "i8042.hpp"

using namespace vfsdax::vmm;

namespace {

struct Probe : BusDevice {
    std::vector<std::pair<uint64_t, std::size_t>> accesses;
    void read(uint64_t offset, std::span<std::byte> data) override {
        accesses.emplace_back(offset, data.size());
        std::fill(data.begin(), data.end(), std::byte{0x11});
    }
    void write(uint64_t offset, std::span<const std::byte> data) override {
        accesses.emplace_back(offset, data.size());
    }
};

}  // namespace

TEST_CASE("insert refuses overlaps and empty ranges") {
    Bus bus;
    auto p = std::make_shared<Probe>();
    CHECK(bus.insert(0x1000, 0x100, p));
    CHECK(bus.insert(0x1100, 0x100, p));
    CHECK(bus.insert(0x10ff, 2, p).error() == BusError::Overlap);
    CHECK(bus.insert(0x0f00, 0x101, p).error() == BusError::Overlap);
    CHECK(bus.insert(0x1050, 1, p).error() == BusError::Overlap);
    CHECK(bus.insert(0x2000, 0, p).error() == BusError::Empty);
    CHECK(bus.insert(~uint64_t{0}, 2, p).error() == BusError::Empty);
    CHECK(bus.remove(0x1000));
    CHECK(bus.remove(0x1000).error() == BusError::NotFound);
    CHECK(bus.insert(0x0f00, 0x200, p));
}

TEST_CASE("accesses reach the device at their offset and never straddle a range end") {
    Bus bus;
    auto p = std::make_shared<Probe>();
    REQUIRE(bus.insert(0x3f8, 8, p));
    std::byte b[4];
    CHECK(bus.read(0x3fd, std::span(b, 1)));
    CHECK(b[0] == std::byte{0x11});
    CHECK(bus.write(0x3f8, std::span(b, 4)));
    CHECK_FALSE(bus.read(0x3fe, std::span(b, 4)));  // runs past 0x3ff
    CHECK_FALSE(bus.read(0x3f7, std::span(b, 1)));
    CHECK_FALSE(bus.write(0x400, std::span(b, 1)));
    REQUIRE(p->accesses.size() == 2);
    CHECK(p->accesses[0] == std::pair<uint64_t, std::size_t>{5, 1});
    CHECK(p->accesses[1] == std::pair<uint64_t, std::size_t>{0, 4});
}

TEST_CASE("i8042: only command 0xFE resets; status shows the input buffer empty") {
    int resets = 0;
    I8042 kbd([&] { ++resets; });
    std::byte status{0xff};
    kbd.read(0, std::span(&status, 1));
    CHECK(status == std::byte{kI8042StatusOutputFull});
    const std::byte other{0xd1}, reset{0xfe};
    kbd.write(0, std::span(&other, 1));
    CHECK(resets == 0);
    kbd.write(0, std::span(&reset, 1));
    CHECK(resets == 1);
}
