// SPDX-License-Identifier: Apache-2.0
// GuestMemory: translation bounds, overflow, crossing, placement and alignment.
#include "vfsdax/memory/guest_memory.hpp"

#include <catch2/catch.hpp>
#include <vector>

using vfsdax::GuestAddress;
using vfsdax::GuestMemory;
using vfsdax::MemoryError;

TEST_CASE("translate returns exactly the requested span inside one region") {
    std::vector<std::byte> ram(4096);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), ram.size(), ram.data()));
    auto span = mem.translate(GuestAddress(0x1010), 32);
    REQUIRE(span);
    CHECK(span->data() == ram.data() + 0x10);
    CHECK(span->size() == 32);
    CHECK(mem.translate(GuestAddress(0x1000), 4096));
    CHECK(mem.translate(GuestAddress(0x2000), 0).error() == MemoryError::OutOfRange);
}

TEST_CASE("translate rejects ranges outside, running past, or wrapping") {
    std::vector<std::byte> ram(4096);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), ram.size(), ram.data()));
    CHECK(mem.translate(GuestAddress(0xfff), 1).error() == MemoryError::OutOfRange);
    CHECK(mem.translate(GuestAddress(0x1fff), 2).error() == MemoryError::OutOfRange);
    CHECK(mem.translate(GuestAddress(0x1800), 0x900).error() == MemoryError::OutOfRange);
    CHECK(mem.translate(GuestAddress(0x1000), ~uint64_t{0}).error() == MemoryError::Overflow);
    CHECK(mem.translate(GuestAddress(~uint64_t{0}), 2).error() == MemoryError::Overflow);
    CHECK(mem.translate(GuestAddress(0x1001), ~uint64_t{0} - 0x1000).error() ==
          MemoryError::Overflow);
}

TEST_CASE("a range crossing two adjacent regions is rejected, by design") {
    std::vector<std::byte> a(4096), b(4096);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), a.size(), a.data()));
    REQUIRE(mem.add_region(GuestAddress(0x2000), b.size(), b.data()));
    CHECK(mem.translate(GuestAddress(0x1ff0), 0x20).error() == MemoryError::OutOfRange);
    CHECK(mem.translate(GuestAddress(0x2000), 0x20)->data() == b.data());
}

TEST_CASE("regions may not overlap, be empty, or wrap") {
    std::vector<std::byte> ram(4096);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), ram.size(), ram.data()));
    CHECK(mem.add_region(GuestAddress(0x1800), 4096, ram.data()).error() == MemoryError::Overlap);
    CHECK(mem.add_region(GuestAddress(0x0800), 4096, ram.data()).error() == MemoryError::Overlap);
    CHECK(mem.add_region(GuestAddress(0x4000), 0, ram.data()).error() == MemoryError::BadRegion);
    CHECK(mem.add_region(GuestAddress(0x4000), 16, nullptr).error() == MemoryError::BadRegion);
    CHECK(mem.add_region(GuestAddress(~uint64_t{0} - 10), 4096, ram.data()).error() ==
          MemoryError::Overflow);
}

TEST_CASE("an unplaced region is invisible until placed, and moves") {
    std::vector<std::byte> ram(4096), bar(8192);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), ram.size(), ram.data()));
    auto id = mem.add_unplaced_region(bar.size(), bar.data());
    REQUIRE(id);
    for (uint64_t a : {uint64_t{0}, uint64_t{1}, uint64_t{0x100}, ~uint64_t{0} - 1}) {
        CHECK_FALSE(mem.translate(GuestAddress(a), 1).has_value());
    }
    CHECK(mem.place_region(*id, GuestAddress(0x1800)).error() == MemoryError::Overlap);
    REQUIRE(mem.place_region(*id, GuestAddress(0x100000)));
    CHECK(mem.translate(GuestAddress(0x100010), 16)->data() == bar.data() + 0x10);
    REQUIRE(mem.place_region(*id, GuestAddress(0x200000)));
    CHECK_FALSE(mem.translate(GuestAddress(0x100010), 16).has_value());
    CHECK(mem.translate(GuestAddress(0x201ff0), 16)->data() == bar.data() + 0x1ff0);
    REQUIRE(mem.unplace_region(*id));
    CHECK_FALSE(mem.translate(GuestAddress(0x200000), 1).has_value());
    CHECK(mem.place_region(*id + 1, GuestAddress(0)).error() == MemoryError::BadRegion);
}

TEST_CASE("a region cache gives translate()'s answers and forgets a moved region") {
    std::vector<std::byte> bar(8192);
    GuestMemory mem;
    auto id = mem.add_unplaced_region(bar.size(), bar.data());
    REQUIRE(id);
    REQUIRE(mem.place_region(*id, GuestAddress(0x100000)));
    GuestMemory::RegionCache cache;
    CHECK_FALSE(cache.holds_nonempty(0x100000, 1));  // empty until a hit fills it
    CHECK(mem.translate(GuestAddress(0x100010), 16, cache)->data() == bar.data() + 0x10);
    CHECK(mem.is_current(cache));
    CHECK(cache.holds_nonempty(0x101ff0, 16));
    CHECK_FALSE(cache.holds_nonempty(0x101ff0, 17));
    CHECK_FALSE(cache.holds_nonempty(0x100010, 0));  // zero length folds into the compare
    CHECK_FALSE(cache.holds_nonempty(0xffff0, 16));
    CHECK(mem.translate(GuestAddress(0x102000), 0, cache).error() == MemoryError::OutOfRange);
    CHECK(mem.translate(GuestAddress(0x100000), ~uint64_t{0}, cache).error() ==
          MemoryError::Overflow);
    REQUIRE(mem.place_region(*id, GuestAddress(0x200000)));
    CHECK_FALSE(mem.is_current(cache));
    CHECK_FALSE(mem.translate(GuestAddress(0x100010), 16, cache).has_value());
    CHECK(mem.translate(GuestAddress(0x200010), 16, cache)->data() == bar.data() + 0x10);
    REQUIRE(mem.unplace_region(*id));
    CHECK(mem.translate(GuestAddress(0x200010), 16, cache).error() == MemoryError::OutOfRange);
}

TEST_CASE("object access checks alignment; read and write copy") {
    std::vector<std::byte> ram(4096);
    GuestMemory mem;
    REQUIRE(mem.add_region(GuestAddress(0x1000), ram.size(), ram.data()));
    CHECK(mem.object<uint32_t>(GuestAddress(0x1002)).error() == MemoryError::Misaligned);
    REQUIRE(mem.write<uint32_t>(GuestAddress(0x1004), 0xdeadbeef));
    CHECK(**mem.object<uint32_t>(GuestAddress(0x1004)) == 0xdeadbeef);
    CHECK(*mem.read<uint32_t>(GuestAddress(0x1004)) == 0xdeadbeef);
    CHECK(mem.read<uint64_t>(GuestAddress(0x1ffc)).error() == MemoryError::OutOfRange);
}

TEST_CASE("the region table has a fixed capacity") {
    std::vector<std::byte> ram(16);
    GuestMemory mem;
    for (std::size_t i = 0; i < GuestMemory::kMaxRegions; ++i) {
        REQUIRE(mem.add_region(GuestAddress(0x1000 * (i + 1)), ram.size(), ram.data()));
    }
    CHECK(mem.add_region(GuestAddress(0x100000), 16, ram.data()).error() == MemoryError::BadRegion);
}
