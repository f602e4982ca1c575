// SPDX-License-Identifier: Apache-2.0
// MappingTable: overlap rules, removal splits, limits, alignment, hostile bounds, extent lists.
#include "dax/mapping_table.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "dax_fixtures.hpp"

using dax_test::error_of;
using vfsdax::fs::MappedExtent;
using vfsdax::fs::Mapping;
using vfsdax::fs::MappingTable;
using vfsdax::fs::WindowRange;

namespace {

constexpr uint64_t P = 4096;
constexpr uint64_t kWindow = 256 * P;
constexpr uint64_t kMax = ~uint64_t{0};

using Extents = std::vector<MappedExtent>;

MappingTable make_table(std::size_t max_extents = 64) {
    return MappingTable({kWindow, P, max_extents});
}

// One extent of `pages` pages at file page `file_page`.
std::vector<MappedExtent> pages(uint64_t file_page, uint64_t count) {
    return {{file_page * P, count * P}};
}

// What the table holds, compared field by field so a failure shows which mapping differs.
void check_mapping(const Mapping& m, uint64_t offset, uint64_t length, uint64_t owner,
                   bool writable, const std::vector<MappedExtent>& extents) {
    CHECK(m.offset == offset);
    CHECK(m.length == length);
    CHECK(m.owner == owner);
    CHECK(m.writable == writable);
    CHECK_FALSE(m.dead);
    CHECK(m.extents == extents);
}

}  // namespace

TEST_CASE("a mapping covering an old one exactly replaces it") {
    auto table = make_table();
    REQUIRE(table.insert(8 * P, pages(0, 4), false, 7));
    REQUIRE(table.insert(8 * P, pages(100, 4), true, 9));
    auto all = table.snapshot();
    REQUIRE(all.size() == 1);
    check_mapping(all[0], 8 * P, 4 * P, 9, true, pages(100, 4));
    CHECK(table.extents() == 1);
    CHECK(table.bytes_mapped() == 4 * P);
}

TEST_CASE("a read-only mapping is upgraded to read-write by mapping it again") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 32), false, 3));
    CHECK(table.writable_ranges(3).empty());
    REQUIRE(table.insert(0, pages(0, 32), true, 3));
    CHECK(table.writable_ranges(3) == std::vector<WindowRange>{{0, 32 * P}});
    CHECK(table.live_mappings() == 1);
}

TEST_CASE("a new mapping over the tail of an old one trims the old one's end") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(10, 8), false, 1));
    REQUIRE(table.insert(6 * P, pages(50, 4), true, 2));
    auto all = table.snapshot();
    REQUIRE(all.size() == 2);
    check_mapping(all[0], 0, 6 * P, 1, false, pages(10, 6));
    check_mapping(all[1], 6 * P, 4 * P, 2, true, pages(50, 4));
}

TEST_CASE("a new mapping over the head of an old one trims the old one's start") {
    auto table = make_table();
    REQUIRE(table.insert(4 * P, pages(10, 8), false, 1));
    REQUIRE(table.insert(2 * P, pages(50, 4), false, 2));
    auto all = table.snapshot();
    REQUIRE(all.size() == 2);
    check_mapping(all[0], 2 * P, 4 * P, 2, false, pages(50, 4));
    // The old mapping's surviving pages keep their own file offsets: file page 10 + 2.
    check_mapping(all[1], 6 * P, 6 * P, 1, false, pages(12, 6));
}

TEST_CASE("a new mapping inside an old one splits it in two") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 16), true, 1));
    REQUIRE(table.insert(4 * P, pages(99, 2), false, 2));
    auto all = table.snapshot();
    REQUIRE(all.size() == 3);
    check_mapping(all[0], 0, 4 * P, 1, true, pages(0, 4));
    check_mapping(all[1], 4 * P, 2 * P, 2, false, pages(99, 2));
    check_mapping(all[2], 6 * P, 10 * P, 1, true, pages(6, 10));
    CHECK(table.extents() == 3);
}

TEST_CASE("a new mapping swallows the mappings it covers and trims the ones it touches") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 4), false, 1));
    REQUIRE(table.insert(4 * P, pages(20, 2), false, 2));
    REQUIRE(table.insert(8 * P, pages(40, 2), false, 3));
    REQUIRE(table.insert(12 * P, pages(60, 4), false, 4));
    REQUIRE(table.insert(2 * P, pages(80, 12), false, 5));
    auto all = table.snapshot();
    REQUIRE(all.size() == 3);
    check_mapping(all[0], 0, 2 * P, 1, false, pages(0, 2));
    check_mapping(all[1], 2 * P, 12 * P, 5, false, pages(80, 12));
    check_mapping(all[2], 14 * P, 2 * P, 4, false, pages(62, 2));
    CHECK(table.extents() == 3);
}

TEST_CASE("removal takes out exact, head, tail and inner parts, and unmapped ranges") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 4), false, 1));
    REQUIRE(table.insert(8 * P, pages(0, 8), false, 2));

    SECTION("exactly one mapping") {
        REQUIRE(table.remove(0, 4 * P));
        auto all = table.snapshot();
        REQUIRE(all.size() == 1);
        CHECK(all[0].offset == 8 * P);
    }
    SECTION("the head of a mapping") {
        REQUIRE(table.remove(8 * P, 3 * P));
        check_mapping(table.snapshot()[1], 11 * P, 5 * P, 2, false, pages(3, 5));
    }
    SECTION("the tail of a mapping") {
        REQUIRE(table.remove(14 * P, 2 * P));
        check_mapping(table.snapshot()[1], 8 * P, 6 * P, 2, false, pages(0, 6));
    }
    SECTION("the inside of a mapping splits it") {
        REQUIRE(table.remove(10 * P, 2 * P));
        auto all = table.snapshot();
        REQUIRE(all.size() == 3);
        check_mapping(all[1], 8 * P, 2 * P, 2, false, pages(0, 2));
        check_mapping(all[2], 12 * P, 4 * P, 2, false, pages(4, 4));
        CHECK(table.extents() == 3);
    }
    SECTION("a range across both mappings and the gap between them") {
        REQUIRE(table.remove(2 * P, 8 * P));
        auto all = table.snapshot();
        REQUIRE(all.size() == 2);
        check_mapping(all[0], 0, 2 * P, 1, false, pages(0, 2));
        check_mapping(all[1], 10 * P, 6 * P, 2, false, pages(2, 6));
    }
    SECTION("a range nothing maps") {
        REQUIRE(table.remove(100 * P, 4 * P));
        CHECK(table.snapshot().size() == 2);
    }
    SECTION("everything") {
        REQUIRE(table.remove(0, kWindow));
        CHECK(table.snapshot().empty());
        CHECK(table.extents() == 0);
        CHECK(table.bytes_mapped() == 0);
    }
}

TEST_CASE("a mapping of several extents keeps them back to back and splits them right") {
    auto table = make_table();
    // A file whose pages live scattered in a pool: 3 pages at pool page 40, 2 at 7, 4 at 90.
    const std::vector<MappedExtent> extents{{40 * P, 3 * P}, {7 * P, 2 * P}, {90 * P, 4 * P}};
    REQUIRE(table.insert(16 * P, extents, true, 5));
    check_mapping(table.snapshot()[0], 16 * P, 9 * P, 5, true, extents);
    CHECK(table.extents() == 3);

    SECTION("removal across an extent boundary") {
        // Window pages 18..20 are pool pages 42 (1st extent), 7 and 8 (2nd extent).
        REQUIRE(table.remove(18 * P, 3 * P));
        auto all = table.snapshot();
        REQUIRE(all.size() == 2);
        check_mapping(all[0], 16 * P, 2 * P, 5, true, {{40 * P, 2 * P}});
        check_mapping(all[1], 21 * P, 4 * P, 5, true, {{90 * P, 4 * P}});
        CHECK(table.extents() == 2);
    }
    SECTION("a single-extent mapping in the middle of the list") {
        REQUIRE(table.insert(17 * P, pages(200, 6), false, 6));
        auto all = table.snapshot();
        REQUIRE(all.size() == 3);
        check_mapping(all[0], 16 * P, P, 5, true, {{40 * P, P}});
        check_mapping(all[1], 17 * P, 6 * P, 6, false, pages(200, 6));
        check_mapping(all[2], 23 * P, 2 * P, 5, true, {{92 * P, 2 * P}});
    }
}

TEST_CASE("misaligned offsets and lengths are refused and change nothing") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 2), false, 1));
    CHECK(error_of(table.insert(P / 2, pages(0, 1), false, 1)) == EINVAL);
    CHECK(error_of(table.insert(4 * P, Extents{{P + 512, P}}, false, 1)) == EINVAL);
    CHECK(error_of(table.insert(4 * P, Extents{{0, P + 1}}, false, 1)) == EINVAL);
    CHECK(error_of(table.insert(4 * P, Extents{{0, P}, {P, 100}}, false, 1)) == EINVAL);
    CHECK(error_of(table.remove(P / 2, P)) == EINVAL);
    CHECK(error_of(table.remove(0, P - 1)) == EINVAL);
    CHECK(table.snapshot().size() == 1);
    CHECK(table.bytes_mapped() == 2 * P);
}

TEST_CASE("bounds are checked without overflow, against the window's end") {
    auto table = make_table();
    // The last page of the window is fine; one past it is not.
    CHECK(table.insert(kWindow - P, pages(0, 1), false, 1));
    CHECK(error_of(table.insert(kWindow, pages(0, 1), false, 1)) == EINVAL);
    CHECK(error_of(table.insert(kWindow - P, pages(0, 2), false, 1)) == EINVAL);
    CHECK(error_of(table.insert(0, pages(0, 257), false, 1)) == EINVAL);
    // offset + length wraps to a small value.
    const uint64_t near_top = kMax - P + 1;
    CHECK(error_of(table.insert(near_top, pages(0, 2), false, 1)) == EINVAL);
    CHECK(error_of(table.insert(2 * P, Extents{{0, near_top}}, false, 1)) == EINVAL);
    CHECK(error_of(table.remove(near_top, 2 * P)) == EINVAL);
    CHECK(error_of(table.remove(2 * P, near_top)) == EINVAL);
    // Extent lengths whose sum wraps.
    CHECK(error_of(table.insert(0, Extents{{0, near_top}, {0, 2 * P}}, false, 1)) == EINVAL);
    // File ranges beyond what a signed file offset can say, or wrapping.
    CHECK(error_of(table.insert(0, Extents{{near_top, P}}, false, 1)) == EINVAL);
    CHECK(error_of(table.insert(0, Extents{{uint64_t{1} << 63, P}}, false, 1)) == EINVAL);
    // A file range must end at or below INT64_MAX, as mmap requires of regular files.
    CHECK(error_of(table.insert(0, Extents{{(uint64_t{1} << 63) - P, P}}, false, 1)) == EINVAL);
    CHECK(table.insert(0, Extents{{(uint64_t{1} << 63) - 2 * P, P}}, false, 1));
    // Empty requests.
    CHECK(error_of(table.insert(0, Extents{}, false, 1)) == EINVAL);
    CHECK(error_of(table.insert(0, Extents{{0, 0}}, false, 1)) == EINVAL);
    CHECK(error_of(table.remove(0, 0)) == EINVAL);
    CHECK(table.snapshot().size() == 2);
}

TEST_CASE("the extent limit refuses growth until something is removed") {
    auto table = make_table(4);
    for (uint64_t i = 0; i < 4; ++i) REQUIRE(table.insert(i * 4 * P, pages(i, 3), false, 1));
    CHECK(table.extents() == 4);
    CHECK(error_of(table.insert(64 * P, pages(0, 1), false, 1)) == ENOSPC);
    // Trimming a mapping to make room for a new one, or splitting one by removal, grows it too.
    CHECK(error_of(table.insert(0, pages(9, 1), false, 1)) == ENOSPC);
    CHECK(error_of(table.remove(P, P)) == ENOSPC);
    CHECK(error_of(table.insert(0, Extents{{0, P}, {0, P}, {0, P}, {0, P}, {0, P}}, false, 1)) ==
          ENOSPC);
    CHECK(table.snapshot().size() == 4);
    CHECK(table.bytes_mapped() == 12 * P);
    // Replacing one mapping keeps the count: allowed while full.
    CHECK(table.insert(0, pages(30, 3), true, 2));
    // Trimming a mapping's tail keeps it too.
    CHECK(table.remove(14 * P, P));
    // One extent covering two old ones lowers it.
    CHECK(table.insert(4 * P, pages(0, 7), false, 1));
    CHECK(table.extents() == 3);
    CHECK(table.insert(64 * P, pages(0, 1), false, 1));
    CHECK(error_of(table.insert(68 * P, pages(0, 1), false, 1)) == ENOSPC);
    REQUIRE(table.remove(64 * P, P));
    CHECK(table.insert(68 * P, pages(0, 1), false, 1));
}

TEST_CASE("occupied tells whether a range overlaps any mapping, even when it wraps") {
    auto table = make_table();
    REQUIRE(table.insert(4 * P, pages(0, 4), false, 1));
    CHECK_FALSE(table.occupied(0, 4 * P));
    CHECK(table.occupied(0, 4 * P + 1));
    CHECK(table.occupied(7 * P, P));
    CHECK(table.occupied(5 * P, 1));
    CHECK_FALSE(table.occupied(8 * P, 100 * P));
    CHECK(table.occupied(P, kMax));
    CHECK_FALSE(table.occupied(8 * P, kMax));
}

TEST_CASE("dead mappings stay until removed, are not synced, and split like live ones") {
    auto table = make_table();
    REQUIRE(table.insert(0, pages(0, 8), true, 1));
    REQUIRE(table.insert(8 * P, pages(0, 8), true, 1));
    REQUIRE(table.insert(16 * P, pages(0, 8), true, 2));
    REQUIRE(table.kill(0, 8 * P));
    CHECK(table.find(0)->dead);
    CHECK(table.find(0)->extents.empty());
    CHECK(table.extents() == 2);
    CHECK_FALSE(table.find(8 * P)->dead);
    CHECK(table.find(24 * P) == nullptr);
    CHECK(table.live_mappings() == 2);
    CHECK(table.dead_mappings() == 1);
    CHECK(table.bytes_mapped() == 16 * P);
    CHECK(table.writable_ranges(1) == std::vector<WindowRange>{{8 * P, 8 * P}});
    CHECK(table.writable_ranges(2) == std::vector<WindowRange>{{16 * P, 8 * P}});
    REQUIRE(table.remove(2 * P, 2 * P));
    CHECK(table.dead_mappings() == 2);
    CHECK(table.find(P)->dead);
    CHECK(table.find(5 * P)->dead);
    // A new mapping over a dead range is live.
    REQUIRE(table.insert(0, pages(0, 2), true, 1));
    CHECK_FALSE(table.find(0)->dead);
    table.clear();
    CHECK(table.snapshot().empty());
    CHECK(table.extents() == 0);
}

TEST_CASE("killing part of a mapping leaves the rest live, with its extents") {
    auto table = make_table(4);
    const Extents extents{{40 * P, 4 * P, 44 * P}, {7 * P, 4 * P, 8 * P}};
    REQUIRE(table.insert(16 * P, extents, true, 3));
    SECTION("the tail of the first extent: no extra extent needed") {
        REQUIRE(table.kill(18 * P, 2 * P));
        const auto all = table.snapshot();
        REQUIRE(all.size() == 3);
        check_mapping(all[0], 16 * P, 2 * P, 3, true, {{40 * P, 2 * P, 44 * P}});
        CHECK(all[1].offset == 18 * P);
        CHECK(all[1].length == 2 * P);
        CHECK(all[1].dead);
        CHECK(all[1].extents.empty());
        check_mapping(all[2], 20 * P, 4 * P, 3, true, {{7 * P, 4 * P, 8 * P}});
        CHECK(table.extents() == 2);
        CHECK(table.bytes_mapped() == 6 * P);
        CHECK(table.writable_ranges(3) ==
              std::vector<WindowRange>{{16 * P, 2 * P}, {20 * P, 4 * P}});
    }
    SECTION("the middle of an extent splits it in two, within the limit") {
        REQUIRE(table.kill(17 * P, P));
        CHECK(table.extents() == 3);
        CHECK(table.find(17 * P)->dead);
        check_mapping(*table.find(18 * P), 18 * P, 6 * P, 3, true,
                      {{42 * P, 2 * P, 44 * P}, {7 * P, 4 * P, 8 * P}});
    }
    SECTION("a split beyond the extent limit changes nothing") {
        REQUIRE(table.insert(0, pages(0, 2), false, 4));
        REQUIRE(table.insert(2 * P, pages(9, 2), false, 4));
        CHECK(error_of(table.kill(17 * P, P)) == ENOSPC);
        CHECK_FALSE(table.find(17 * P)->dead);
        CHECK(table.extents() == 4);
    }
    SECTION("ranges are checked like removals; unmapped parts are fine") {
        CHECK(error_of(table.kill(17 * P, 0)) == EINVAL);
        CHECK(error_of(table.kill(17 * P + 1, P)) == EINVAL);
        CHECK(error_of(table.kill(kMax - P + 1, P)) == EINVAL);
        REQUIRE(table.kill(100 * P, P));
        CHECK(table.snapshot().size() == 1);
    }
}

TEST_CASE("a shadow follows its extent through cuts, and the table counts shadowed extents") {
    auto table = make_table();
    const Extents extents{{40 * P, 8 * P, 48 * P}, {7 * P, 4 * P, 12 * P}};
    REQUIRE(table.insert(16 * P, extents, true, 3));
    REQUIRE(table.insert(64 * P, pages(0, 4), false, 4));
    // The first extent's last five pages lie past its file's end now.
    table.for_each_extent(3, [](uint64_t at, MappedExtent& e, const Mapping&) {
        if (at == 16 * P) e.shadowed_from = 3 * P;
    });
    CHECK(table.shadowed_extents() == 1);
    std::vector<uint64_t> seen;
    table.for_each_extent(std::nullopt,
                          [&](uint64_t at, MappedExtent&, const Mapping&) { seen.push_back(at); });
    CHECK(seen == std::vector<uint64_t>{16 * P, 24 * P, 64 * P});

    SECTION("a cut through the shadow: each piece keeps its part of it") {
        REQUIRE(table.remove(20 * P, 2 * P));
        const auto all = table.snapshot();
        REQUIRE(all.size() == 3);
        REQUIRE(all[0].extents.size() == 1);
        CHECK(all[0].extents[0].length == 4 * P);
        CHECK(all[0].extents[0].shadowed_from == 3 * P);
        CHECK(all[0].extents[0].file_backed() == 3 * P);
        CHECK(all[1].offset == 22 * P);
        CHECK(all[1].extents[0].file_offset == 46 * P);
        CHECK(all[1].extents[0].shadowed_from == 0);  // all of it past the end
        CHECK(all[1].extents[1].shadowed_from == MappedExtent::kNotShadowed);
        CHECK(table.shadowed_extents() == 2);
    }
    SECTION("a cut before the shadow leaves a piece without one") {
        REQUIRE(table.remove(18 * P, 6 * P));
        const auto all = table.snapshot();
        CHECK(all[0].extents[0].length == 2 * P);
        CHECK_FALSE(all[0].extents[0].shadowed());
        CHECK(table.shadowed_extents() == 0);
    }
    SECTION("replacing, killing and clearing forget the shadow") {
        REQUIRE(table.kill(16 * P, 12 * P));
        CHECK(table.shadowed_extents() == 0);
        REQUIRE(table.insert(16 * P, extents, true, 3));
        CHECK(table.shadowed_extents() == 0);
        table.for_each_extent(
            3, [](uint64_t, MappedExtent& e, const Mapping&) { e.shadowed_from = 0; });
        CHECK(table.shadowed_extents() == 2);
        table.clear();
        CHECK(table.shadowed_extents() == 0);
    }
    SECTION("only the owner's extents are visited; a shadow lifted is counted off") {
        int visits = 0;
        table.for_each_extent(4, [&](uint64_t, MappedExtent&, const Mapping& m) {
            CHECK(m.owner == 4);
            ++visits;
        });
        CHECK(visits == 1);
        table.for_each_extent(3, [](uint64_t, MappedExtent& e, const Mapping&) {
            e.shadowed_from = MappedExtent::kNotShadowed;
        });
        CHECK(table.shadowed_extents() == 0);
    }
}
