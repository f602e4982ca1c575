// SPDX-License-Identifier: Apache-2.0
// DAX coherence: what a window range shows and where its stores go when its file changes size
// (docs/dax.md), driven through the FUSE requests Linux sends, checked on the host; and a
// seeded model-based exerciser of the same.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "dax_guest.hpp"

using namespace dax_test;

namespace {

constexpr auto kScan = DaxMapper::TruncationScope::CutSinceMapped;
constexpr auto kAfterFault = DaxMapper::TruncationScope::CutOrAnyPastEnd;

// Copies through the kernel, so a page that would raise SIGBUS fails the copy instead of the
// test: the guest's loads and stores through the window, without a fault handler in front.
bool window_read(const std::byte* at, void* out, uint64_t length) {
    iovec local{out, length};
    iovec remote{const_cast<std::byte*>(at), length};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(length);
}

bool window_write(std::byte* at, const void* data, uint64_t length) {
    iovec local{const_cast<void*>(data), length};
    iovec remote{at, length};
    return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(length);
}

std::vector<unsigned char> window_bytes(const std::byte* at, uint64_t length) {
    std::vector<unsigned char> out(length);
    REQUIRE(window_read(at, out.data(), length));
    return out;
}

// "" when equal, else where they first differ: a failure message a person can read, where
// printing two 2 MiB vectors would take minutes.
std::string difference(const std::vector<unsigned char>& got,
                       const std::vector<unsigned char>& want) {
    if (got.size() != want.size()) {
        return "size " + std::to_string(got.size()) + ", want " + std::to_string(want.size());
    }
    const auto at = std::mismatch(got.begin(), got.end(), want.begin());
    if (at.first == got.end()) return "";
    return "at byte " + std::to_string(at.first - got.begin()) + ": " + std::to_string(*at.first) +
           ", want " + std::to_string(*at.second);
}

std::vector<unsigned char> filled(uint64_t length, unsigned char value) {
    return std::vector<unsigned char>(length, value);
}

uint64_t host_size(const std::filesystem::path& path) {
    return std::filesystem::file_size(path);
}

int open_fds() {
    int n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// The guest side of one file: its node, a read-write handle, and the requests Linux sends
// for truncate(2), write(2) past the end, fallocate(2) and copy_file_range(2).
struct GuestFile {
    DaxGuest& guest;
    uint64_t node;
    uint64_t fh;

    GuestFile(DaxGuest& g, const std::string& name)
        : guest(g), node(g.lookup(name).nodeid), fh(g.open(node, O_RDWR)) {}

    int truncate(uint64_t size) {
        fuse_setattr_in in{};
        in.valid = FATTR_SIZE | FATTR_FH;
        in.fh = fh;
        in.size = size;
        return guest.call(FUSE_SETATTR, node, {bytes_of(in)}).error();
    }
    // In pieces the driver model's request buffers hold, as Linux splits by max_write.
    int write(uint64_t offset, const std::vector<unsigned char>& data) {
        constexpr uint64_t kPiece = 4096;
        for (uint64_t done = 0; done < data.size(); done += kPiece) {
            const uint64_t n = std::min<uint64_t>(kPiece, data.size() - done);
            fuse_write_in in{};
            in.fh = fh;
            in.offset = offset + done;
            in.size = static_cast<uint32_t>(n);
            Bytes payload(n);
            std::memcpy(payload.data(), data.data() + done, n);
            auto reply = guest.call(FUSE_WRITE, node, {bytes_of(in), payload});
            if (reply.error() != 0) return reply.error();
            if (reply.as<fuse_write_out>().size != n) return EIO;
        }
        return 0;
    }
    int fallocate(uint64_t offset, uint64_t length, uint32_t mode) {
        fuse_fallocate_in in{fh, offset, length, mode, 0};
        return guest.call(FUSE_FALLOCATE, node, {bytes_of(in)}).error();
    }
    int copy_from(const GuestFile& source, uint64_t from, uint64_t to, uint64_t length) {
        fuse_copy_file_range_in in{};
        in.fh_in = source.fh;
        in.off_in = from;
        in.nodeid_out = node;
        in.fh_out = fh;
        in.off_out = to;
        in.len = length;
        return guest.call(FUSE_COPY_FILE_RANGE, source.node, {bytes_of(in)}).error();
    }
    std::vector<unsigned char> read(uint64_t offset, uint32_t length) {
        fuse_read_in in{};
        in.fh = fh;
        in.offset = offset;
        in.size = length;
        auto reply = guest.call(FUSE_READ, node, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        const auto* p = reinterpret_cast<const unsigned char*>(reply.payload.data());
        return std::vector<unsigned char>(p, p + reply.payload.size());
    }
};

}  // namespace

TEST_CASE(
    "the guest truncates down and grows again: its stores through the window reach the "
    "file",
    "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", 2 * kRange);
    guest.init(Mount::Always);
    GuestFile f(guest, "f");
    REQUIRE(guest.setup_mapping(f.node, 0, 0, true) == 0);
    REQUIRE(guest.setup_mapping(f.node, 1, kRange, true) == 0);
    std::byte* window = guest.window();

    REQUIRE(f.truncate(kRange / 2) == 0);
    const bool scanned = GENERATE(false, true);
    if (scanned) {
        // The VMM's scan runs between the shrink and the growth: it takes what lies past the
        // end off the file (a guest touching it would fault for ever)...
        CHECK(guest.mapper().repair_truncated(kScan) == 2u);
        CHECK(guest.mapper().stats().extents_shadowed == 2);
        CHECK(window_bytes(window + kRange, P) == filled(P, 0));
    }
    // ...and the growth, before its reply, gives it back to the file.
    REQUIRE(f.truncate(2 * kRange) == 0);
    CHECK(guest.mapper().stats().extents_shadowed == 0);
    CHECK(guest.mapper().stats().mappings_live == 2);
    // The regrown part reads as the file does: zeros, whatever was there before the shrink.
    CHECK(difference(window_bytes(window + kRange / 2, kRange / 2), filled(kRange / 2, 0)) == "");
    CHECK(window_bytes(window + kRange + 3 * P, P) == filled(P, 0));

    const auto mark = filled(100, 0xc4);
    REQUIRE(window_write(window + kRange + P + 7, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", kRange + P + 7, 100) == mark);
    // And the host's writes show in the window.
    const auto host_mark = filled(64, 0x3b);
    {
        const int fd = ::open((guest.dir / "f").c_str(), O_WRONLY);
        REQUIRE(pwrite(fd, host_mark.data(), 64, kRange / 2 + 5) == 64);
        ::close(fd);
    }
    CHECK(window_bytes(window + kRange / 2 + 5, 64) == host_mark);
    // Shrink and grow again: still the file.
    REQUIRE(f.truncate(P) == 0);
    if (scanned) CHECK(guest.mapper().repair_truncated(kScan) == 2u);
    REQUIRE(f.truncate(2 * kRange) == 0);
    REQUIRE(window_write(window + 3 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", 3 * P, 100) == mark);
    CHECK(read_file(guest.dir / "f", kRange + P + 7, 100) == filled(100, 0));
    const auto stats = guest.mapper().stats();
    CHECK(stats.restores == (scanned ? 4u : 0u));
    CHECK(stats.mappings_dead == 0);
}

TEST_CASE("a WRITE past the end maps the shadowed range back before its reply", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init(Mount::Always);
    GuestFile f(guest, "f");
    REQUIRE(guest.setup_mapping(f.node, 0, 2 * kRange, true) == 0);
    REQUIRE(f.truncate(4 * P) == 0);
    CHECK(guest.mapper().repair_truncated(kScan) == 1u);

    // Linux extends a file through FUSE_WRITE, then stores through the window it still holds.
    const auto data = filled(3 * P, 0x5e);
    REQUIRE(f.write(8 * P, data) == 0);
    CHECK(host_size(guest.dir / "f") == 11 * P);
    CHECK(window_bytes(guest.window() + 2 * kRange + 8 * P, 3 * P) == data);
    CHECK(window_bytes(guest.window() + 2 * kRange + 4 * P, 4 * P) == filled(4 * P, 0));
    const auto mark = filled(16, 0x99);
    REQUIRE(window_write(guest.window() + 2 * kRange + 5 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", 5 * P, 16) == mark);
    // Past the new end the range stays shadowed, so a touch there cannot hang a vCPU.
    CHECK(dax_test::kernel_can_read(guest.window() + 2 * kRange + 12 * P));
    CHECK(guest.mapper().stats().extents_shadowed == 1);
}

TEST_CASE("FALLOCATE: a punched hole reads as zeros and takes stores; growth maps back", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init(Mount::Always);
    GuestFile f(guest, "f");
    REQUIRE(guest.setup_mapping(f.node, 0, 0, true) == 0);
    std::byte* window = guest.window();

    const int punched = f.fallocate(4 * P, 8 * P, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    if (punched == EOPNOTSUPP) {
        WARN("not run: the host file system cannot punch holes");
        return;
    }
    REQUIRE(punched == 0);
    CHECK(window_bytes(window + 4 * P, 8 * P) == filled(8 * P, 0));
    CHECK(window_bytes(window + 12 * P, P) == pattern_bytes(12 * P, P));
    // A hole is no end of file: nothing to repair, and the guest's stores land in the file.
    CHECK(guest.mapper().repair_truncated(kScan) == 0u);
    CHECK(guest.mapper().repair_truncated(kAfterFault) == 0u);
    const auto mark = filled(32, 0x17);
    REQUIRE(window_write(window + 6 * P + 1, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", 6 * P + 1, 32) == mark);

    // Shrunk, shadowed, then grown by fallocate (mode 0): the range is the file's again.
    REQUIRE(f.truncate(2 * P) == 0);
    CHECK(guest.mapper().repair_truncated(kScan) == 1u);
    REQUIRE(f.fallocate(0, kRange, 0) == 0);
    CHECK(guest.mapper().stats().extents_shadowed == 0);
    REQUIRE(window_write(window + 100 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", 100 * P, 32) == mark);
}

TEST_CASE("COPY_FILE_RANGE that grows the destination maps its shadowed range back", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "src", kRange);
    write_file(guest.dir / "dst", kRange);
    guest.init(Mount::Always);
    GuestFile src(guest, "src"), dst(guest, "dst");
    REQUIRE(guest.setup_mapping(dst.node, 0, kRange, true) == 0);
    REQUIRE(dst.truncate(P) == 0);
    CHECK(guest.mapper().repair_truncated(kScan) == 1u);
    REQUIRE(dst.copy_from(src, 0, 16 * P, 4 * P) == 0);
    CHECK(guest.mapper().stats().extents_shadowed == 1);  // past 20 pages: still shadowed
    CHECK(window_bytes(guest.window() + kRange + 16 * P, 4 * P) == pattern_bytes(0, 4 * P));
    const auto mark = filled(8, 0xee);
    REQUIRE(window_write(guest.window() + kRange + 10 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "dst", 10 * P, 8) == mark);
}

TEST_CASE("the host truncates and extends: the VMM survives, then the window is the file again",
          "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init(Mount::Always);
    GuestFile f(guest, "f");
    REQUIRE(guest.setup_mapping(f.node, 0, 0, true) == 0);
    std::filesystem::resize_file(guest.dir / "f", 2 * P + 10);
    CHECK_FALSE(dax_test::kernel_can_read(guest.window() + 3 * P));  // a fault without repair
    CHECK(guest.mapper().repair_truncated(kScan) == 1u);
    CHECK(window_bytes(guest.window() + 3 * P, P) == filled(P, 0));
    CHECK(window_bytes(guest.window(), 2 * P) == pattern_bytes(0, 2 * P));
    // The page holding the new end is the file's: its tail reads zero.
    auto tail = window_bytes(guest.window() + 2 * P, P);
    CHECK(std::vector<unsigned char>(tail.begin(), tail.begin() + 10) == pattern_bytes(2 * P, 10));
    CHECK(std::vector<unsigned char>(tail.begin() + 10, tail.end()) == filled(P - 10, 0));

    // The host extends it again: the next scan maps it back, and the guest sees the file's
    // real contents and writes into the file.
    {
        const int fd = ::open((guest.dir / "f").c_str(), O_WRONLY);
        const auto data = filled(P, 0x61);
        REQUIRE(pwrite(fd, data.data(), P, 6 * P) == static_cast<ssize_t>(P));
        ::close(fd);
    }
    CHECK(guest.mapper().repair_truncated(kScan) == 0u);
    CHECK(guest.mapper().stats().extents_shadowed == 1);  // past 7 pages
    CHECK(window_bytes(guest.window() + 6 * P, P) == filled(P, 0x61));
    const auto mark = filled(4, 0x70);
    REQUIRE(window_write(guest.window() + 4 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "f", 4 * P, 4) == mark);
}

TEST_CASE("a fault past the end at any time: tails shadowed, then mapped back as files grow",
          "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "small", 3 * P);
    guest.init(Mount::Always);
    GuestFile f(guest, "small");
    REQUIRE(guest.setup_mapping(f.node, 0, kRange, true) == 0);
    // Nothing was cut since the mapping: the scan leaves the tail alone, a fault takes it.
    CHECK(guest.mapper().repair_truncated(kScan) == 0u);
    CHECK(guest.mapper().repair_truncated(kAfterFault) == 1u);
    CHECK(guest.mapper().stats().extents_shadowed == 1);
    REQUIRE(f.write(3 * P, filled(2 * P, 0x44)) == 0);
    CHECK(window_bytes(guest.window() + kRange + 3 * P, 2 * P) == filled(2 * P, 0x44));
    // An address the VMM knows: past the end it shadows, from the file's end on.
    REQUIRE(guest.mapper().repair(kRange + 9 * P + 5));
    CHECK(guest.mapper().stats().mappings_dead == 0);
    CHECK(guest.mapper().repair(kRange + 9 * P));  // again: shadowed already
    REQUIRE(f.truncate(10 * P) == 0);
    const auto mark = filled(8, 0x12);
    REQUIRE(window_write(guest.window() + kRange + 9 * P, mark.data(), mark.size()));
    CHECK(read_file(guest.dir / "small", 9 * P, 8) == mark);
}

TEST_CASE("REMOVEMAPPING after a repair takes the shadowed range and lets go of the file",
          "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init(Mount::Always);
    const int before = open_fds();
    {
        GuestFile f(guest, "f");
        REQUIRE(guest.setup_mapping(f.node, 0, 0, true) == 0);
        REQUIRE(f.truncate(P) == 0);
        CHECK(guest.mapper().repair_truncated(kScan) == 1u);
        REQUIRE(guest.remove_mappings(f.node, {{0, kRange}}) == 0);
        const auto stats = guest.mapper().stats();
        CHECK(stats.mappings_live == 0);
        CHECK(stats.extents_shadowed == 0);
        CHECK(window_bytes(guest.window(), P) == filled(P, 0));
        // The growth finds nothing to map back: the window stays anonymous.
        REQUIRE(f.truncate(kRange) == 0);
        CHECK(window_bytes(guest.window() + 4 * P, P) == filled(P, 0));
        fuse_release_in release{};
        release.fh = f.fh;
        release.flags = O_RDWR;
        REQUIRE(guest.call(FUSE_RELEASE, f.node, {bytes_of(release)}).error() == 0);
    }
    // The inode's own descriptor stays (no FORGET); the mapper's copy is gone.
    CHECK(open_fds() <= before + 1);
}

TEST_CASE("a store into a read-only mapping kills that mapping, not the VMM", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init(Mount::Always);
    GuestFile f(guest, "f");
    REQUIRE(guest.setup_mapping(f.node, 0, kRange, false) == 0);
    REQUIRE(guest.mapper().repair(kRange + 5 * P));  // the page is the file's: a store fault
    auto stats = guest.mapper().stats();
    CHECK(stats.mappings_dead == 1);
    CHECK(stats.mappings_live == 0);
    CHECK(window_bytes(guest.window() + kRange, P) == filled(P, 0));
    CHECK(read_file(guest.dir / "f", 0, P) == pattern_bytes(0, P));
    REQUIRE(guest.remove_mappings(f.node, {{kRange, kRange}}) == 0);
    CHECK(guest.mapper().stats().mappings_dead == 0);
}

// Model-based: random guest operations on two files through FUSE and the window, with the
// VMM's scans and fault repairs in between; after each step every mapped, in-file byte of the
// window equals the model, and at the end the host files equal it.
TEST_CASE("randomized: DAX mappings under truncation, growth, holes and writes keep the data",
          "[dax]") {
    const uint32_t seed = GENERATE(1u, 2u, 3u, 4u);
    CAPTURE(seed);
    std::mt19937 rng(seed);
    auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
    constexpr uint64_t kSlots = 6;  // window ranges
    constexpr uint64_t kMaxSize = 3 * kRange;
    DaxGuest guest(kSlots * kRange);
    const std::vector<std::string> names{"a", "b"};
    std::vector<std::vector<unsigned char>> model(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        write_file(guest.dir / names[i], kRange + i * 5 * P);
        model[i] = pattern_bytes(0, kRange + i * 5 * P);
    }
    guest.init(Mount::Always);
    std::vector<GuestFile> files;
    for (const auto& name : names) files.emplace_back(guest, name);
    struct Slot {
        std::size_t file;
        uint64_t range;
        bool writable;
    };
    std::map<uint64_t, Slot> slots;  // window range -> what the guest mapped there
    bool punch = true;

    for (int step = 0; step < 400; ++step) {
        CAPTURE(step);
        const std::size_t which = pick(files.size());
        GuestFile& f = files[which];
        auto& content = model[which];
        const uint64_t op = pick(10);
        if (op == 0) {  // SETUPMAPPING of a range inside the file, as Linux maps
            const uint64_t ranges = (content.size() + kRange - 1) / kRange;
            if (ranges == 0) continue;
            const uint64_t slot = pick(kSlots), range = pick(ranges);
            const bool writable = pick(2) == 1;
            REQUIRE(guest.setup_mapping(f.node, range, slot * kRange, writable) == 0);
            slots[slot] = {which, range, writable};
        } else if (op == 1 && !slots.empty()) {  // REMOVEMAPPING (reclaim)
            auto it = std::next(slots.begin(), static_cast<long>(pick(slots.size())));
            REQUIRE(guest.remove_mappings(files[it->second.file].node,
                                          {{it->first * kRange, kRange}}) == 0);
            slots.erase(it);
        } else if (op == 2) {  // truncate(2), down or up
            const uint64_t size = pick(kMaxSize + 1);
            REQUIRE(f.truncate(size) == 0);
            content.resize(size, 0);
        } else if (op == 3) {  // write(2) anywhere, also past the end
            const uint64_t offset = pick(kMaxSize), length = 1 + pick(3 * P);
            const auto data = filled(length, static_cast<unsigned char>(1 + pick(255)));
            REQUIRE(f.write(offset, data) == 0);
            if (content.size() < offset + length) content.resize(offset + length, 0);
            std::copy(data.begin(), data.end(), content.begin() + static_cast<long>(offset));
        } else if (op == 4 && punch) {  // a hole
            const uint64_t offset = pick(kMaxSize / P) * P, length = (1 + pick(16)) * P;
            const int r = f.fallocate(offset, length, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
            if (r == EOPNOTSUPP) {
                punch = false;
                continue;
            }
            REQUIRE(r == 0);
            for (uint64_t i = offset; i < std::min<uint64_t>(offset + length, content.size()); ++i)
                content[i] = 0;
        } else if (op == 5) {  // the VMM's periodic scan
            REQUIRE(guest.mapper().repair_truncated(kScan));
        } else if (op == 6) {  // a vCPU's address-less EFAULT
            REQUIRE(guest.mapper().repair_truncated(kAfterFault));
        } else if (op >= 7 && !slots.empty()) {  // a store through the window, as Linux does:
            // only into a writable range, and only below the end of file the guest knows
            auto it = std::next(slots.begin(), static_cast<long>(pick(slots.size())));
            const Slot& s = it->second;
            if (!s.writable || s.file != which) continue;
            const uint64_t start = s.range * kRange;
            if (content.size() <= start) continue;
            const uint64_t in_range = std::min<uint64_t>(kRange, content.size() - start);
            const uint64_t offset = pick(in_range);
            const uint64_t length = 1 + pick(std::min<uint64_t>(in_range - offset, 2 * P));
            const auto data = filled(length, static_cast<unsigned char>(1 + pick(255)));
            REQUIRE(
                window_write(guest.window() + it->first * kRange + offset, data.data(), length));
            std::copy(data.begin(), data.end(),
                      content.begin() + static_cast<long>(start + offset));
        }
        // Every mapped byte inside its file reads as the model says.
        for (const auto& [slot, s] : slots) {
            const auto& c = model[s.file];
            const uint64_t start = s.range * kRange;
            if (c.size() <= start) continue;
            const uint64_t n = std::min<uint64_t>(kRange, c.size() - start);
            CAPTURE(slot, s.file, s.range);
            REQUIRE(difference(window_bytes(guest.window() + slot * kRange, n),
                               std::vector<unsigned char>(
                                   c.begin() + static_cast<long>(start),
                                   c.begin() + static_cast<long>(start + n))) == "");
        }
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
        REQUIRE(host_size(guest.dir / names[i]) == model[i].size());
        if (!model[i].empty()) {
            CHECK(difference(read_file(guest.dir / names[i], 0, model[i].size()), model[i]) == "");
        }
        // And through FUSE_READ, the path without DAX.
        const auto head = files[i].read(
            0, static_cast<uint32_t>(std::min<uint64_t>(model[i].size(), 128 * 1024)));
        CHECK(difference(head, std::vector<unsigned char>(
                                   model[i].begin(),
                                   model[i].begin() + static_cast<long>(head.size()))) == "");
    }
}
