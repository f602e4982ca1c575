// SPDX-License-Identifier: Apache-2.0
// e820 map: RAM around the low reserved area and the PCI hole, entries sorted and disjoint.
#include "e820.hpp"

#include <asm/e820.h>

#include <catch2/catch.hpp>

using namespace vfsdax::vmm;
using namespace vfsdax::vmm::layout;

namespace {

bool covers(const std::vector<boot_e820_entry>& map, uint64_t addr) {
    for (const auto& e : map)
        if (addr >= e.addr && addr < e.addr + e.size) return true;
    return false;
}

void check_sorted_and_disjoint(const std::vector<boot_e820_entry>& map) {
    for (std::size_t i = 1; i < map.size(); ++i)
        CHECK(map[i - 1].addr + map[i - 1].size <= map[i].addr);
}

}  // namespace

TEST_CASE("512 MiB: low RAM, reserved BIOS area, KVM pages, nothing above 4 GiB") {
    const auto map = build_e820(RamLayout::of(512 * MiB));
    REQUIRE(map.size() == 4);
    CHECK(map[0].addr == 0);
    CHECK(map[0].size == kEbda);
    CHECK(map[0].type == E820_RAM);
    CHECK(map[1].addr == kEbda);
    CHECK(map[1].addr + map[1].size == 1 * MiB);
    CHECK(map[1].type == E820_RESERVED);
    CHECK(map[2].addr == 1 * MiB);
    CHECK(map[2].addr + map[2].size == 512 * MiB);
    CHECK(map[2].type == E820_RAM);
    CHECK(map[3].type == E820_RESERVED);
    CHECK(map[3].addr == kIdentityMapPage);
    check_sorted_and_disjoint(map);
    CHECK_FALSE(covers(map, kMmio32Start));
}

TEST_CASE("5 GiB: RAM stops at 3 GiB and resumes at 4 GiB; the PCI window stays a gap") {
    const auto layout = RamLayout::of(5 * GiB);
    CHECK(layout.low_size == 3 * GiB);
    CHECK(layout.high_size == 2 * GiB);
    CHECK(layout.end() == 6 * GiB);
    const auto map = build_e820(layout);
    REQUIRE(map.size() == 5);
    CHECK(map[2].addr + map[2].size == 3 * GiB);
    CHECK(map[4].addr == 4 * GiB);
    CHECK(map[4].size == 2 * GiB);
    CHECK(map[4].type == E820_RAM);
    check_sorted_and_disjoint(map);
    for (uint64_t a = kMmio32Start; a < kMmio32End; a += 64 * MiB) CHECK_FALSE(covers(map, a));
    CHECK_FALSE(covers(map, kIoapic));
    CHECK_FALSE(covers(map, kLapic));
}

TEST_CASE("exactly 3 GiB needs no high region") {
    const auto layout = RamLayout::of(3 * GiB);
    CHECK(layout.high_size == 0);
    CHECK(layout.end() == 3 * GiB);
    CHECK(build_e820(layout).size() == 4);
}
