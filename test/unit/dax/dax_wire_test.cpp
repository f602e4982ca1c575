// SPDX-License-Identifier: Apache-2.0
// DAX on the wire: FsDevice with a DaxMapper driven through the split-ring driver model and the
// FUSE client the way the Linux guest drives it (INIT flags, 2 MiB SETUPMAPPINGs by nodeid, a
// 256-entry REMOVEMAPPING, buffers inside the window, SYNCFS, reset), checked on the host.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "dax_guest.hpp"
#include "vfsdax/fs/dax_fault_handler.hpp"

using namespace dax_test;

namespace {

bool dax_flag(const fuse_attr& attr) {
    return (attr.flags & FUSE_ATTR_DAX) != 0;
}

}  // namespace

TEST_CASE("the device declares its window as shared memory region 0", "[dax]") {
    DaxGuest guest(4 * kRange);
    const auto regions = guest.device().shared_memory_regions();
    REQUIRE(regions.size() == 1);
    CHECK(regions[0].id == VIRTIO_FS_SHMCAP_ID_CACHE);
    CHECK(regions[0].size == 4 * kRange);

    TempDir dir;
    auto backend = fs::make_passthrough({.root = dir.path().string()}).value();
    FsDeviceOptions options;
    options.tag = "plain";
    auto plain = FsDevice::create(options, *backend);
    REQUIRE(plain);
    CHECK((*plain)->shared_memory_regions().empty());
}

TEST_CASE("INIT as Linux sends it: MAP_ALIGNMENT with the page's log2, per-inode DAX by policy",
          "[dax]") {
    uint32_t log2_page = 0;
    while ((uint64_t{1} << log2_page) < P) ++log2_page;

    SECTION("dax=inode with a policy") {
        DaxGuest guest(8 * kRange, {.inode_dax = InodeDax::All});
        const auto out = guest.init(Mount::Inode);
        CHECK((out.flags & FUSE_MAP_ALIGNMENT) != 0);
        CHECK(out.map_alignment == log2_page);
        CHECK(out.map_alignment <= 21);  // what the Linux guest accepts
        CHECK((out.flags & FUSE_INIT_EXT) != 0);
        CHECK(out.flags2 == static_cast<uint32_t>(FUSE_HAS_INODE_DAX >> 32));
    }
    SECTION("dax=inode without a policy: per-inode DAX is not offered") {
        DaxGuest guest;
        const auto out = guest.init(Mount::Inode);
        CHECK((out.flags & FUSE_MAP_ALIGNMENT) != 0);
        CHECK(out.map_alignment == log2_page);
        CHECK(out.flags2 == 0);
    }
    SECTION("dax=always does not ask for per-inode DAX") {
        DaxGuest guest(8 * kRange, {.inode_dax = InodeDax::All});
        const auto out = guest.init(Mount::Always);
        CHECK((out.flags & FUSE_MAP_ALIGNMENT) != 0);
        CHECK(out.flags2 == 0);
    }
}

TEST_CASE("FUSE_ATTR_DAX follows the per-inode policy", "[dax]") {
    struct Case {
        InodeDax policy;
        Mount mount;
        bool small, big;
    };
    const auto c = GENERATE(Case{InodeDax::None, Mount::Inode, false, false},
                            Case{InodeDax::All, Mount::Inode, true, true},
                            Case{InodeDax::MinSize, Mount::Inode, false, true},
                            Case{InodeDax::All, Mount::Always, false, false});
    DaxGuest guest(8 * kRange, {.inode_dax = c.policy, .inode_dax_min_size = kRange / 2});
    write_file(guest.dir / "small", 4096);
    write_file(guest.dir / "big", kRange / 2);
    std::filesystem::create_directory(guest.dir / "d");
    guest.init(c.mount);

    const auto small = guest.lookup("small");
    const auto big = guest.lookup("big");
    CHECK(dax_flag(small.attr) == c.small);
    CHECK(dax_flag(big.attr) == c.big);
    CHECK(!dax_flag(guest.lookup("d").attr));

    fuse_getattr_in getattr{};
    auto attr = guest.call(FUSE_GETATTR, big.nodeid, {bytes_of(getattr)});
    REQUIRE(attr.error() == 0);
    CHECK(dax_flag(attr.as<fuse_attr_out>().attr) == c.big);

    // READDIRPLUS entries carry the same flag.
    fuse_open_in open_dir{O_RDONLY, 0};
    auto opened = guest.call(FUSE_OPENDIR, FUSE_ROOT_ID, {bytes_of(open_dir)});
    REQUIRE(opened.error() == 0);
    fuse_read_in rd{};
    rd.fh = opened.as<fuse_open_out>().fh;
    rd.size = 4096;
    auto listing = guest.call(FUSE_READDIRPLUS, FUSE_ROOT_ID, {bytes_of(rd)});
    REQUIRE(listing.error() == 0);
    std::map<std::string, bool> flags;
    for (const Dirent& e : parse_dirents(listing.payload, true)) {
        if (e.entry && e.entry->nodeid != 0) flags[e.name] = dax_flag(e.entry->attr);
    }
    CHECK(flags.at("small") == c.small);
    CHECK(flags.at("big") == c.big);
    CHECK(flags.at("d") == false);

    // The flag follows the file: grown past the threshold on the host, it qualifies.
    std::filesystem::resize_file(guest.dir / "small", kRange);
    attr = guest.call(FUSE_GETATTR, small.nodeid, {bytes_of(getattr)});
    REQUIRE(attr.error() == 0);
    CHECK(dax_flag(attr.as<fuse_attr_out>().attr) == c.big);
}

TEST_CASE("SETUPMAPPING as Linux sends it: 2 MiB ranges by nodeid, READ then upgraded to WRITE",
          "[dax]") {
    DaxGuest guest;
    const uint64_t size = 2 * kRange + kRange / 2;  // the last range runs past end of file
    write_file(guest.dir / "f", size);
    guest.init();
    const auto entry = guest.lookup("f");
    const uint64_t fh = guest.open(entry.nodeid, O_RDWR);

    REQUIRE(guest.setup_mapping(entry.nodeid, 0, 3 * kRange, false) == 0);
    REQUIRE(guest.setup_mapping(entry.nodeid, 2, 0, false) == 0);
    CHECK(host_bytes(guest.window() + 3 * kRange, kRange) == pattern_bytes(0, kRange));
    CHECK(host_bytes(guest.window(), kRange / 2) == pattern_bytes(2 * kRange, kRange / 2));
    CHECK(dax_test::kernel_can_read(guest.window() + 3 * kRange));
    CHECK(!dax_test::kernel_can_write(guest.window() + 3 * kRange));
    auto stats = guest.mapper().stats();
    CHECK(stats.mappings_live == 2);

    // The guest's first store faults, and its driver asks again with WRITE for the same range.
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, 3 * kRange, true) == 0);
    stats = guest.mapper().stats();
    CHECK(stats.mappings_live == 2);  // replaced, not added
    CHECK(stats.setups == 3);
    std::byte* at = guest.window() + 3 * kRange + 5 * P + 3;
    REQUIRE(dax_test::kernel_can_write(at));
    *at = std::byte{0xa5};
    fuse_fsync_in fsync{fh, 0, 0};
    REQUIRE(guest.call(FUSE_FSYNC, entry.nodeid, {bytes_of(fsync)}).error() == 0);
    CHECK(read_file(guest.dir / "f", 5 * P + 3, 1)[0] == 0xa5);

    // Out of the window, or not page-aligned: refused, nothing changes.
    CHECK(guest.setup_mapping(entry.nodeid, 0, 8 * kRange, false) == EINVAL);
    fuse_setupmapping_in odd{kAllOnes, 0, kRange, FUSE_SETUPMAPPING_FLAG_READ, kRange + 512};
    CHECK(guest.call(FUSE_SETUPMAPPING, entry.nodeid, {bytes_of(odd)}).error() == EINVAL);
    CHECK(guest.mapper().stats().mappings_live == 2);
}

TEST_CASE("a read-only share maps for reading and refuses the WRITE upgrade", "[dax]") {
    DaxGuest guest(8 * kRange, {.read_only = true});
    write_file(guest.dir / "f", kRange);
    guest.init();
    const auto entry = guest.lookup("f");
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, kRange, false) == 0);
    CHECK(guest.setup_mapping(entry.nodeid, 0, kRange, true) == EROFS);
    CHECK(guest.mapper().stats().mappings_live == 1);
    CHECK(host_bytes(guest.window() + kRange, P) == pattern_bytes(0, P));
}

TEST_CASE("a batched REMOVEMAPPING of 256 entries, as inode eviction sends it", "[dax]") {
    constexpr uint64_t kEntries = 256;  // PAGE_SIZE / sizeof(fuse_removemapping_one)
    DaxGuest guest(kEntries * kRange);
    {
        const int fd = ::open((guest.dir / "big").c_str(), O_CREAT | O_RDWR, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(ftruncate(fd, static_cast<off_t>(kEntries * kRange)) == 0);
        // A marker at the start of every range, so each mapping shows it maps its own range.
        for (uint64_t i = 0; i < kEntries; ++i) {
            const unsigned char marker = static_cast<unsigned char>(i % 251 + 1);
            REQUIRE(pwrite(fd, &marker, 1, static_cast<off_t>(i * kRange)) == 1);
        }
        ::close(fd);
    }
    guest.init();
    const auto entry = guest.lookup("big");
    // Window ranges in reverse file order, as a busy guest's free list hands them out.
    std::vector<fuse_removemapping_one> entries;
    for (uint64_t i = 0; i < kEntries; ++i) {
        const uint64_t window_offset = (kEntries - 1 - i) * kRange;
        REQUIRE(guest.setup_mapping(entry.nodeid, i, window_offset, i % 2 == 0) == 0);
        entries.push_back({window_offset, kRange});
    }
    CHECK(guest.mapper().stats().mappings_live == kEntries);
    for (uint64_t i = 0; i < kEntries; i += 51) {
        CHECK(static_cast<unsigned char>(guest.window()[(kEntries - 1 - i) * kRange]) ==
              i % 251 + 1);
    }

    // Reclaim first frees one range on its own.
    REQUIRE(guest.remove_mappings(entry.nodeid, {entries.back()}) == 0);
    CHECK(guest.mapper().stats().mappings_live == kEntries - 1);
    // Then eviction sends all 256 in one request; the range already gone is fine.
    REQUIRE(guest.remove_mappings(entry.nodeid, entries) == 0);
    const auto stats = guest.mapper().stats();
    CHECK(stats.mappings_live == 0);
    CHECK(stats.bytes_mapped == 0);
    CHECK(stats.removals == kEntries + 1);
    for (uint64_t i = 0; i < kEntries; i += 51) {
        CHECK(all_zero(guest.window() + i * kRange, P));
    }
    // A count the body does not carry is refused before anything is removed.
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, 0, false) == 0);
    fuse_removemapping_in short_count{2};
    fuse_removemapping_one one{0, kRange};
    CHECK(guest.call(FUSE_REMOVEMAPPING, entry.nodeid, {bytes_of(short_count), bytes_of(one)})
              .error() == EINVAL);
    CHECK(guest.mapper().stats().mappings_live == 1);
}

TEST_CASE("READ and WRITE whose data buffers lie inside the window", "[dax]") {
    DaxGuest guest;
    constexpr uint32_t kLength = 64 << 10;
    write_file(guest.dir / "src", kLength);
    write_file(guest.dir / "dst", kRange);
    { std::ofstream(guest.dir / "out"); }
    guest.init();
    const auto src = guest.lookup("src");
    const auto dst = guest.lookup("dst");
    const auto out = guest.lookup("out");
    const uint64_t src_fh = guest.open(src.nodeid, O_RDONLY);
    const uint64_t dst_fh = guest.open(dst.nodeid, O_RDWR);
    const uint64_t out_fh = guest.open(out.nodeid, O_WRONLY);
    // dst is DAX-mapped writable at window range 1; a guest process read()s src into that
    // mapping, and later write()s it from there into out.
    REQUIRE(guest.setup_mapping(dst.nodeid, 0, kRange, true) == 0);
    const uint64_t window_offset = kRange + 4 * P;
    const DriverBuffer in_window{GuestAddress(kWindowBase + window_offset), kLength};

    SplitDriver& driver = guest.driver();
    TestMemory& memory = guest.memory();
    {
        fuse_read_in rd{};
        rd.fh = src_fh;
        rd.size = kLength;
        const Bytes request = fuse_request(FUSE_READ, 1001, src.nodeid, {bytes_of(rd)});
        const DriverBuffer req = driver.alloc_buffer(static_cast<uint32_t>(request.size()));
        std::memcpy(memory.raw(req.addr, request.size()), request.data(), request.size());
        const DriverBuffer header = driver.alloc_buffer(sizeof(fuse_out_header));
        const DriverBuffer readable[] = {req};
        const DriverBuffer writable[] = {header, in_window};
        const uint32_t written = guest.call_raw(readable, writable);
        const auto out_header = memory.load<fuse_out_header>(header.addr);
        CHECK(written == sizeof(fuse_out_header) + kLength);
        CHECK(out_header.error == 0);
        CHECK(out_header.unique == 1001);
        CHECK(out_header.len == written);
        CHECK(host_bytes(guest.window() + window_offset, kLength) == pattern_bytes(0, kLength));
        // Through the mapping, the data reached dst on the host.
        fuse_fsync_in fsync{dst_fh, 0, 0};
        REQUIRE(guest.call(FUSE_FSYNC, dst.nodeid, {bytes_of(fsync)}).error() == 0);
        CHECK(read_file(guest.dir / "dst", 4 * P, kLength) == pattern_bytes(0, kLength));
    }
    {
        fuse_write_in wr{};
        wr.fh = out_fh;
        wr.size = kLength;
        const Bytes request = fuse_request(FUSE_WRITE, 1002, out.nodeid, {bytes_of(wr)});
        // The header as one buffer, the payload in the window.
        Bytes framed = request;
        fuse_in_header in{};
        std::memcpy(&in, framed.data(), sizeof(in));
        in.len += kLength;
        std::memcpy(framed.data(), &in, sizeof(in));
        const DriverBuffer req = driver.alloc_buffer(static_cast<uint32_t>(framed.size()));
        std::memcpy(memory.raw(req.addr, framed.size()), framed.data(), framed.size());
        const DriverBuffer reply =
            driver.alloc_buffer(sizeof(fuse_out_header) + sizeof(fuse_write_out));
        const DriverBuffer readable[] = {req, in_window};
        const DriverBuffer writable[] = {reply};
        const uint32_t written = guest.call_raw(readable, writable);
        REQUIRE(written == sizeof(fuse_out_header) + sizeof(fuse_write_out));
        CHECK(memory.load<fuse_out_header>(reply.addr).error == 0);
        CHECK(memory.load<fuse_write_out>(GuestAddress(reply.addr.raw() + sizeof(fuse_out_header)))
                  .size == kLength);
        CHECK(read_file(guest.dir / "out", 0, kLength) == pattern_bytes(0, kLength));
    }
    CHECK(guest.interrupt.resets == 0);
}

TEST_CASE("a reply placed in a read-only window range: answered there, never written to the file",
          "[dax]") {
    REQUIRE(fs::install_dax_fault_handler());
    DaxGuest guest;
    const auto kLength = static_cast<uint32_t>(2 * P);
    write_file(guest.dir / "src", kLength);
    write_file(guest.dir / "ro", kRange);
    guest.init();
    const auto src = guest.lookup("src");
    const auto ro = guest.lookup("ro");
    const uint64_t src_fh = guest.open(src.nodeid, O_RDONLY);
    REQUIRE(guest.setup_mapping(ro.nodeid, 0, 0, false) == 0);
    // A hostile guest puts a READ's reply header and its data buffer in that mapping.
    const DriverBuffer header{GuestAddress(kWindowBase), sizeof(fuse_out_header)};
    const DriverBuffer data{GuestAddress(kWindowBase + P), kLength};
    fuse_read_in rd{};
    rd.fh = src_fh;
    rd.size = kLength;
    const Bytes request = fuse_request(FUSE_READ, 77, src.nodeid, {bytes_of(rd)});
    const DriverBuffer req = guest.driver().alloc_buffer(static_cast<uint32_t>(request.size()));
    std::memcpy(guest.memory().raw(req.addr, request.size()), request.data(), request.size());
    const DriverBuffer readable[] = {req};
    const DriverBuffer writable[] = {header, data};
    const uint32_t written = guest.call_raw(readable, writable);

    // The header went to a zero page put in place of the file's; the data could not be
    // stored (the kernel reports EFAULT into a read-only page), so the reply is that error.
    fuse_out_header out{};
    std::memcpy(&out, guest.window(), sizeof(out));
    CHECK(written == sizeof(fuse_out_header));
    CHECK(out.unique == 77);
    CHECK(out.error == -EFAULT);
    CHECK(guest.mapper().stats().faulted_pages == 1);
    CHECK(read_file(guest.dir / "ro", 0, kRange) == pattern_bytes(0, kRange));
    // The device goes on.
    CHECK(guest.call(FUSE_GETATTR, src.nodeid, {bytes_of(fuse_getattr_in{})}).error() == 0);
    CHECK(guest.interrupt.resets == 0);
}

TEST_CASE("SYNCFS writes back what the guest dirtied through every mapping", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "a", P);
    write_file(guest.dir / "b", P);
    guest.init();
    const auto a = guest.lookup("a");
    const auto b = guest.lookup("b");
    REQUIRE(guest.setup_mapping(a.nodeid, 0, 0, true) == 0);
    REQUIRE(guest.setup_mapping(b.nodeid, 0, 2 * kRange, true) == 0);
    guest.window()[7] = std::byte{0x5a};
    guest.window()[2 * kRange + 9] = std::byte{0xa5};
    REQUIRE(dirty_kib(guest.window()) > 0);
    REQUIRE(dirty_kib(guest.window() + 2 * kRange) > 0);
    fuse_syncfs_in syncfs{};
    REQUIRE(guest.call(FUSE_SYNCFS, FUSE_ROOT_ID, {bytes_of(syncfs)}).error() == 0);
    CHECK(dirty_kib(guest.window()) == 0);
    CHECK(dirty_kib(guest.window() + 2 * kRange) == 0);
    CHECK(read_file(guest.dir / "a", 7, 1)[0] == 0x5a);
    CHECK(read_file(guest.dir / "b", 9, 1)[0] == 0xa5);
}

TEST_CASE("reset and DESTROY empty the window; a re-initialised driver starts clean", "[dax]") {
    DaxGuest guest;
    write_file(guest.dir / "f", kRange);
    guest.init();
    auto entry = guest.lookup("f");
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, kRange, true) == 0);
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, 3 * kRange, false) == 0);
    REQUIRE(host_bytes(guest.window() + kRange, P) == pattern_bytes(0, P));

    SECTION("device reset") {
        guest.device().reset();
    }
    SECTION("FUSE_DESTROY (unmount)") {
        REQUIRE(guest.call(FUSE_DESTROY, FUSE_ROOT_ID, {}).error() == 0);
        CHECK(guest.mapper().stats().mappings_live == 0);
        guest.device().reset();
    }
    CHECK(guest.mapper().stats().mappings_live == 0);
    CHECK(all_zero(guest.window() + kRange, P));
    CHECK(all_zero(guest.window() + 3 * kRange, P));

    guest.start();
    guest.init();
    entry = guest.lookup("f");
    REQUIRE(guest.setup_mapping(entry.nodeid, 0, 0, false) == 0);
    CHECK(guest.mapper().stats().mappings_live == 1);
    CHECK(host_bytes(guest.window(), P) == pattern_bytes(0, P));
    CHECK(all_zero(guest.window() + kRange, P));
}
