// DAX on the wire: FsDevice with a DaxMapper driven through the split-ring driver model and the
// FUSE client the way the Linux guest drives it (INIT flags, 2 MiB SETUPMAPPINGs by nodeid, a
// 256-entry REMOVEMAPPING, buffers inside the window, SYNCFS, reset), checked on the host.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "dax_fixtures.hpp"
#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/dax_fault_handler.hpp"
#include "vfsdax/fs/dax_mapper.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;
using namespace vfsdax::test;
using dax_test::all_zero;
using dax_test::dirty_kib;
using dax_test::P;
using fs::DaxMapper;
using fs::FsDevice;
using fs::FsDeviceOptions;
using fs::InodeDax;

namespace {

constexpr uint64_t kRange = uint64_t{1} << 21;  // FUSE_DAX_SHIFT: the guest's range size
// Where the guest placed the window's BAR: above the test RAM.
constexpr uint64_t kWindowBase = uint64_t{1} << 32;
constexpr uint64_t kAllOnes = ~uint64_t{0};

// fuse_send_init() of Linux 6.1 (fs/fuse/inode.c): its 64-bit flags, split into flags and
// flags2, for a mount with a DAX window.
constexpr uint64_t kLinuxInitFlags =
    FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |
    FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_SPLICE_WRITE | FUSE_SPLICE_MOVE | FUSE_SPLICE_READ |
    FUSE_FLOCK_LOCKS | FUSE_HAS_IOCTL_DIR | FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS |
    FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO | FUSE_WRITEBACK_CACHE | FUSE_NO_OPEN_SUPPORT |
    FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV | FUSE_POSIX_ACL | FUSE_ABORT_ERROR |
    FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_NO_OPENDIR_SUPPORT | FUSE_EXPLICIT_INVAL_DATA |
    FUSE_HANDLE_KILLPRIV_V2 | FUSE_SETXATTR_EXT | FUSE_INIT_EXT | FUSE_SECURITY_CTX |
    FUSE_MAP_ALIGNMENT | FUSE_SUBMOUNTS;

// Linux mount modes: dax=inode (and the default) ask for per-inode DAX, dax=always does not.
enum class Mount { Inode, Always };

class NullInterrupt final : public virtio::Interrupt {
public:
    void queue_used(uint16_t) override {}
    void config_changed() override {}
    void needs_reset(std::string_view) override { ++resets; }
    int resets = 0;
};

// The byte the test files hold at `offset`.
unsigned char pattern(uint64_t offset) {
    return static_cast<unsigned char>(offset * 7 + offset / 4096);
}

std::vector<unsigned char> pattern_bytes(uint64_t offset, uint64_t length) {
    std::vector<unsigned char> out(length);
    for (uint64_t i = 0; i < length; ++i) out[i] = pattern(offset + i);
    return out;
}

void write_file(const std::filesystem::path& path, uint64_t size) {
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    const auto data = pattern_bytes(0, size);
    REQUIRE(pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(size));
    ::close(fd);
}

std::vector<unsigned char> read_file(const std::filesystem::path& path, uint64_t offset,
                                     uint64_t length) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    std::vector<unsigned char> out(length);
    const ssize_t n = pread(fd, out.data(), length, static_cast<off_t>(offset));
    ::close(fd);
    REQUIRE(n == static_cast<ssize_t>(length));
    return out;
}

std::vector<unsigned char> host_bytes(const std::byte* at, uint64_t length) {
    const auto* p = reinterpret_cast<const unsigned char*>(at);
    return std::vector<unsigned char>(p, p + length);
}

// The guest: RAM, the window placed in guest-physical space like a BAR, one hiprio and one
// request queue, the device under test with its DaxMapper.
class DaxGuest {
public:
    explicit DaxGuest(uint64_t window_size = 8 * kRange, fs::FuseOptions fuse = {})
        : memory_(32 << 20),
          backend_(fs::make_passthrough({.root = dir.path().string()}).value()),
          mapper_(DaxMapper::create({.window_size = window_size}).value()) {
        // Regions are added before any device is activated; the BAR is placed afterwards, as
        // when firmware or the guest programs it.
        auto region = memory_.memory().add_unplaced_region(window_size, mapper_->window());
        REQUIRE(region);
        REQUIRE(memory_.memory().place_region(*region, GuestAddress(kWindowBase)));
        FsDeviceOptions options;
        options.tag = "dax";
        options.queue_size = 128;
        options.threads = 2;
        options.packed_ring = false;  // the driver model is split
        options.fuse = fuse;
        auto device = FsDevice::create(options, *backend_, mapper_.get());
        REQUIRE(device);
        device_ = std::move(*device);
        start();
    }
    ~DaxGuest() { device_->reset(); }

    // DRIVER_OK with fresh queues, as a driver initialising the device does.
    void start() {
        const uint64_t features = device_->device_features();
        clients_.clear();
        std::vector<std::unique_ptr<virtio::Queue>> queues;
        for (std::size_t i = 0; i < device_->queue_max_sizes().size(); ++i) {
            clients_.push_back(
                std::make_unique<FuseQueueClient>(memory_, 64, features, 4, 8192, 8192));
            auto q = virtio::activate_queue(clients_.back()->driver().config(), memory_.memory(),
                                            features);
            REQUIRE(q);
            queues.push_back(std::move(*q));
        }
        REQUIRE(device_->activate(memory_.memory(), interrupt, features, std::move(queues)));
    }

    FsDevice& device() { return *device_; }
    DaxMapper& mapper() { return *mapper_; }
    std::byte* window() { return mapper_->window(); }
    SplitDriver& driver() { return clients_.at(1)->driver(); }
    TestMemory& memory() { return memory_; }

    FuseReply call(uint32_t opcode, uint64_t nodeid, std::initializer_list<Bytes> args) {
        const uint64_t unique = ++next_unique_;
        FuseQueueClient& client = *clients_.at(1);
        client.add(fuse_request(opcode, unique, nodeid, args));
        if (client.publish()) device_->queue_notified(1, 0);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        for (;;) {
            if (auto c = client.poll()) return parse_reply(c->written, unique);
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }
    // A chain the test lays out itself (buffers anywhere in guest memory); returns the bytes
    // the device reported written. No other request may be in flight.
    uint32_t call_raw(std::span<const DriverBuffer> readable,
                      std::span<const DriverBuffer> writable) {
        REQUIRE(driver().add(readable, writable));
        driver().publish();
        if (driver().kick_needed()) device_->queue_notified(1, 0);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        for (;;) {
            if (auto used = driver().get_used()) return used->len;
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    fuse_init_out init(Mount mount = Mount::Inode) {
        uint64_t flags = kLinuxInitFlags;
        if (mount == Mount::Inode) flags |= FUSE_HAS_INODE_DAX;
        fuse_init_in in{};
        in.major = 7;
        in.minor = 37;  // Linux 6.1
        in.max_readahead = 1 << 17;
        in.flags = static_cast<uint32_t>(flags);
        in.flags2 = static_cast<uint32_t>(flags >> 32);
        auto reply = call(FUSE_INIT, 0, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_init_out>();
    }
    fuse_entry_out lookup(const std::string& name) {
        auto reply = call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr(name)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_entry_out>();
    }
    uint64_t open(uint64_t node, uint32_t flags) {
        fuse_open_in in{flags, 0};
        auto reply = call(FUSE_OPEN, node, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_open_out>().fh;
    }
    // fuse_setup_one_mapping() of fs/fuse/dax.c: fh -1, the file's range `index`, one range.
    int setup_mapping(uint64_t node, uint64_t index, uint64_t window_offset, bool writable) {
        fuse_setupmapping_in in{};
        in.fh = kAllOnes;
        in.foffset = index * kRange;
        in.len = kRange;
        in.flags = FUSE_SETUPMAPPING_FLAG_READ | (writable ? FUSE_SETUPMAPPING_FLAG_WRITE : 0);
        in.moffset = window_offset;
        return call(FUSE_SETUPMAPPING, node, {bytes_of(in)}).error();
    }
    // fuse_send_removemapping(): the count, then the entries, in one request.
    int remove_mappings(uint64_t node, const std::vector<fuse_removemapping_one>& entries) {
        fuse_removemapping_in in{static_cast<uint32_t>(entries.size())};
        Bytes list(entries.size() * sizeof(fuse_removemapping_one));
        std::memcpy(list.data(), entries.data(), list.size());
        return call(FUSE_REMOVEMAPPING, node, {bytes_of(in), list}).error();
    }

    TempDir dir;
    NullInterrupt interrupt;

private:
    TestMemory memory_;
    std::unique_ptr<fs::FileSystem> backend_;
    std::unique_ptr<DaxMapper> mapper_;
    std::unique_ptr<FsDevice> device_;
    std::vector<std::unique_ptr<FuseQueueClient>> clients_;
    uint64_t next_unique_ = 0;
};

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
