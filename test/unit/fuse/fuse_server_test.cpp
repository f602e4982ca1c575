// SPDX-License-Identifier: Apache-2.0
// FuseServer protocol tests: INIT negotiation, framing and length checks, policies, DAX opcodes,
// driven with hand-built descriptor chains against a passthrough backend on a temp directory.
#include "vfsdax/fs/fuse_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>

#include "fuse/buffer_request.hpp"
#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;
using namespace vfsdax::test;
using vfsdax::fs::CachePolicy;
using vfsdax::fs::FuseOptions;

namespace {

// Hands the reply to the waiting test.
class TestRequest final : public BufferRequest {
public:
    struct State {
        std::mutex mutex;
        std::condition_variable done;
        std::optional<uint32_t> written;
        Bytes reply;
    };

    TestRequest(const Bytes& request, uint32_t reply_capacity, std::size_t segment,
                std::shared_ptr<State> state)
        : BufferRequest(request, reply_capacity, segment), state_(std::move(state)) {}
    TestRequest(const Bytes& request, std::span<const std::size_t> readable,
                std::span<const std::size_t> writable, std::shared_ptr<State> state)
        : BufferRequest(request, readable, writable), state_(std::move(state)) {}
    void complete(uint32_t written) override {
        std::lock_guard lock(state_->mutex);
        state_->written = written;
        state_->reply.assign(reply().begin(), reply().begin() + written);
        state_->done.notify_all();
    }

private:
    std::shared_ptr<State> state_;
};

struct Harness {
    explicit Harness(FuseOptions options = {}, fs::Mapper* mapper = nullptr)
        : backend(fs::make_passthrough({.root = dir.path().string()}).value()),
          server(*backend, options, mapper) {}

    // Hands one request to the server; a parked SETLKW is not waited for.
    std::shared_ptr<TestRequest::State> submit(const Bytes& request,
                                               uint32_t reply_capacity = 1 << 16,
                                               std::size_t segment = SIZE_MAX) {
        auto state = std::make_shared<TestRequest::State>();
        server.handle(std::make_unique<TestRequest>(request, reply_capacity,
                                                    std::min(segment, request.size()), state));
        return state;
    }
    // Sends one request; returns the written bytes, or nullopt when not completed in time.
    std::optional<Bytes> send(const Bytes& request, uint32_t reply_capacity = 1 << 16,
                              std::size_t segment = SIZE_MAX) {
        auto state = submit(request, reply_capacity, segment);
        std::unique_lock lock(state->mutex);
        if (!state->done.wait_for(lock, std::chrono::seconds(5),
                                  [&] { return state->written.has_value(); })) {
            return std::nullopt;
        }
        return state->reply;
    }
    // Sends one request over a chain of the given shape (see BufferRequest).
    std::optional<Bytes> send_shaped(const Bytes& request, std::span<const std::size_t> readable,
                                     std::span<const std::size_t> writable) {
        auto state = std::make_shared<TestRequest::State>();
        server.handle(std::make_unique<TestRequest>(request, readable, writable, state));
        std::unique_lock lock(state->mutex);
        if (!state->done.wait_for(lock, std::chrono::seconds(5),
                                  [&] { return state->written.has_value(); })) {
            return std::nullopt;
        }
        return state->reply;
    }
    FuseReply call(uint32_t opcode, uint64_t nodeid, std::initializer_list<Bytes> args,
                   uint32_t reply_capacity = 1 << 16) {
        const uint64_t unique = ++next_unique;
        auto written = send(fuse_request(opcode, unique, nodeid, args), reply_capacity);
        REQUIRE(written);
        return parse_reply(*written, unique);
    }
    fuse_init_out init(uint32_t want_flags = 0xffffffffu, uint32_t minor = 37) {
        fuse_init_in in{};
        in.major = 7;
        in.minor = minor;
        in.max_readahead = 1 << 17;
        in.flags = want_flags;
        auto reply = call(FUSE_INIT, 0, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        REQUIRE(reply.payload.size() == sizeof(fuse_init_out));
        return reply.as<fuse_init_out>();
    }

    TempDir dir;
    std::unique_ptr<fs::FileSystem> backend;
    fs::FuseServer server;
    uint64_t next_unique = 0;
};

}  // namespace

TEST_CASE("INIT negotiates version, sizes and only the flags both sides want", "[fuse]") {
    Harness h(FuseOptions{.max_write = (1 << 20) + 100});
    const uint32_t asked = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE |
                           FUSE_DO_READDIRPLUS | FUSE_MAP_ALIGNMENT | FUSE_SPLICE_READ |
                           FUSE_MAX_PAGES;
    const fuse_init_out out = h.init(asked, 37);
    CHECK(out.major == 7);
    CHECK(out.minor == 37);
    CHECK(out.flags == (FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_DO_READDIRPLUS |
                        FUSE_MAX_PAGES));  // no writeback (off), no DAX, no splice
    CHECK(out.max_write == (1u << 20));    // rounded down to whole pages
    CHECK(out.max_pages == 256);
    CHECK(out.time_gran == 1);
    CHECK(out.max_readahead == (1u << 17));
    // A second INIT in the same session is refused.
    fuse_init_in again{7, 37, 0, 0, 0, {}};
    CHECK(h.call(FUSE_INIT, 0, {bytes_of(again)}).error() == EIO);
}

TEST_CASE("INIT offers writeback only when enabled, and never more than offered", "[fuse]") {
    Harness h(FuseOptions{.writeback = true});
    const fuse_init_out out = h.init(0xffffffffu, 38);
    CHECK((out.flags & FUSE_WRITEBACK_CACHE) != 0);
    const uint32_t honoured = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_BIG_WRITES |
                              FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
                              FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_WRITEBACK_CACHE |
                              FUSE_HANDLE_KILLPRIV_V2 | FUSE_SUBMOUNTS | FUSE_MAX_PAGES |
                              FUSE_INIT_EXT;  // flags2 is read; nothing in it without a window
    CHECK((out.flags & ~honoured) == 0);
    CHECK(out.flags2 == 0);
    CHECK(out.minor == FUSE_KERNEL_MINOR_VERSION);
}

TEST_CASE("INIT refuses old protocols; a newer major gets our version back", "[fuse]") {
    Harness h;
    fuse_init_in old{7, 30, 0, 0, 0, {}};
    CHECK(h.call(FUSE_INIT, 0, {bytes_of(old)}).error() == EPROTO);
    fuse_init_in newer{8, 0, 0, 0, 0, {}};
    auto reply = h.call(FUSE_INIT, 0, {bytes_of(newer)});
    REQUIRE(reply.error() == 0);
    CHECK(reply.as<fuse_init_out>().major == 7);
    // The short pre-7.36 fuse_init_in (16 bytes) is accepted.
    fuse_init_in in{7, 31, 0, FUSE_ASYNC_READ, 0, {}};
    Bytes shortened = bytes_of(in);
    shortened.resize(16);
    auto ok = h.call(FUSE_INIT, 0, {shortened});
    REQUIRE(ok.error() == 0);
    CHECK(ok.as<fuse_init_out>().minor == 31);
}

TEST_CASE("requests before INIT get EIO; FORGET gets no reply", "[fuse]") {
    Harness h;
    fuse_getattr_in getattr{};
    CHECK(h.call(FUSE_GETATTR, FUSE_ROOT_ID, {bytes_of(getattr)}).error() == EIO);
    fuse_forget_in forget{1};
    auto written = h.send(fuse_request(FUSE_FORGET, 9, FUSE_ROOT_ID, {bytes_of(forget)}));
    REQUIRE(written);
    CHECK(written->empty());
}

TEST_CASE("chains of any shape: empty and one-byte descriptors anywhere", "[fuse]") {
    // The queue engines accept zero-length descriptors and FuseServer::handle is public, so
    // the server must be safe for every chain a DescriptorChain can describe. The reply header
    // once went through a fixed array of 16 iovecs: 17 empty segments before it overflowed it.
    Harness h;
    h.init();
    std::ofstream(h.dir.path() / "f") << "0123456789";
    fuse_getattr_in getattr{};
    const Bytes request = fuse_request(FUSE_GETATTR, 7, FUSE_ROOT_ID, {bytes_of(getattr)});

    SECTION("17 empty writable segments, then room for the reply") {
        std::vector<std::size_t> writable(17, 0);
        writable.push_back(4096);
        auto written = h.send_shaped(request, {}, writable);
        REQUIRE(written);
        auto reply = parse_reply(*written, 7);
        CHECK(reply.error() == 0);
        CHECK((reply.as<fuse_attr_out>().attr.mode & S_IFMT) == S_IFDIR);
    }
    SECTION("every byte of the reply in its own segment, an empty one after each") {
        std::vector<std::size_t> writable;
        for (std::size_t i = 0; i < sizeof(fuse_out_header) + sizeof(fuse_attr_out); ++i) {
            writable.insert(writable.end(), {1, 0});
        }
        auto written = h.send_shaped(request, {}, writable);
        REQUIRE(written);
        auto reply = parse_reply(*written, 7);
        CHECK(reply.error() == 0);
        CHECK((reply.as<fuse_attr_out>().attr.mode & S_IFMT) == S_IFDIR);
    }
    SECTION("the request itself in one-byte segments between empty ones") {
        std::vector<std::size_t> readable;
        for (std::size_t i = 0; i < request.size(); ++i) readable.insert(readable.end(), {0, 1});
        readable.push_back(0);
        const std::size_t writable[] = {0, 0, 4096, 0};
        auto written = h.send_shaped(request, readable, writable);
        REQUIRE(written);
        CHECK(parse_reply(*written, 7).error() == 0);
    }
    SECTION("READ and WRITE payloads across empty segments") {
        fuse_entry_out entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
        fuse_open_in open{};
        open.flags = O_RDWR;
        const uint64_t fh =
            h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open)}).as<fuse_open_out>().fh;
        fuse_write_in write{};
        write.fh = fh;
        write.size = 4;
        const Bytes wreq =
            fuse_request(FUSE_WRITE, 8, entry.nodeid, {bytes_of(write), raw_bytes("ABCD")});
        std::vector<std::size_t> readable(wreq.size() - 4, 1);
        readable.insert(readable.end(), {0, 0, 2, 0, 0, 2, 0});
        const std::size_t room[] = {0, sizeof(fuse_out_header) + sizeof(fuse_write_out)};
        auto written = h.send_shaped(wreq, readable, room);
        REQUIRE(written);
        auto wrote = parse_reply(*written, 8);
        REQUIRE(wrote.error() == 0);
        CHECK(wrote.as<fuse_write_out>().size == 4);

        fuse_read_in read{};
        read.fh = fh;
        read.size = 10;
        const Bytes rreq = fuse_request(FUSE_READ, 9, entry.nodeid, {bytes_of(read)});
        std::vector<std::size_t> writable(40, 0);
        writable.push_back(sizeof(fuse_out_header) + 3);
        writable.resize(writable.size() + 2000, 0);  // more empty ones than IOV_MAX
        writable.push_back(7);
        written = h.send_shaped(rreq, {}, writable);
        REQUIRE(written);
        auto got = parse_reply(*written, 9);
        REQUIRE(got.error() == 0);
        CHECK(got.text() == "ABCD456789");
    }
}

TEST_CASE("framing: in.len is checked against the chain and the size limit", "[fuse]") {
    Harness h;
    h.init();
    fuse_getattr_in getattr{};
    Bytes request = fuse_request(FUSE_GETATTR, 5, FUSE_ROOT_ID, {bytes_of(getattr)});

    SECTION("len larger than the chain") {
        set_request_len(request, static_cast<uint32_t>(request.size() + 1));
        auto written = h.send(request);
        REQUIRE(written);
        CHECK(parse_reply(*written, 5).error() == EINVAL);
    }
    SECTION("len smaller than the header") {
        set_request_len(request, 12);
        auto written = h.send(request);
        REQUIRE(written);
        CHECK(parse_reply(*written, 5).error() == EINVAL);
    }
    SECTION("chain shorter than a header: error reply without a unique") {
        request.resize(20);
        auto written = h.send(request);
        REQUIRE(written);
        CHECK(parse_reply(*written, 0).error() == EINVAL);
    }
    SECTION("op's fixed part missing") {
        auto reply = h.call(FUSE_GETATTR, FUSE_ROOT_ID, {});
        CHECK(reply.error() == EINVAL);
    }
    SECTION("request larger than max_write plus headers") {
        Harness small(FuseOptions{.max_write = 4096});
        small.init();
        fuse_write_in write{};
        write.size = 200000;
        Bytes payload(200000);
        CHECK(small.call(FUSE_WRITE, FUSE_ROOT_ID, {bytes_of(write), payload}).error() == E2BIG);
    }
    SECTION("no room for a reply header: completed with nothing written") {
        auto written = h.send(request, 8);
        REQUIRE(written);
        CHECK(written->empty());
    }
    SECTION("one-byte segments parse like one buffer") {
        auto written = h.send(request, 1 << 12, 1);
        REQUIRE(written);
        auto reply = parse_reply(*written, 5);
        CHECK(reply.error() == 0);
        CHECK((reply.as<fuse_attr_out>().attr.mode & S_IFMT) == S_IFDIR);
    }
}

TEST_CASE("names must be NUL-terminated single components within bounds", "[fuse]") {
    Harness h;
    h.init();
    CHECK(h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {raw_bytes("abc")}).error() == EINVAL);
    CHECK(h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("")}).error() == EINVAL);
    CHECK(h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("a/b")}).error() == EINVAL);
    CHECK(h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr(std::string(256, 'x'))}).error() == ENAMETOOLONG);
    fuse_mkdir_in mkdir{0755, 0};
    CHECK(h.call(FUSE_MKDIR, FUSE_ROOT_ID, {bytes_of(mkdir), raw_bytes("nonul")}).error() ==
          EINVAL);
    // SYMLINK: the target's NUL is missing.
    CHECK(h.call(FUSE_SYMLINK, FUSE_ROOT_ID, {cstr("l"), raw_bytes("target")}).error() == EINVAL);
    CHECK(!std::filesystem::exists(h.dir / "nonul"));
    CHECK(!std::filesystem::is_symlink(h.dir / "l"));
}

TEST_CASE("a reply that cannot fit fails before the file system changes", "[fuse]") {
    Harness h;
    h.init();
    fuse_mkdir_in mkdir{0755, 0};
    // Room for the header but not for fuse_entry_out.
    auto reply = h.call(FUSE_MKDIR, FUSE_ROOT_ID, {bytes_of(mkdir), cstr("d")}, 64);
    CHECK(reply.error() == EINVAL);
    CHECK(!std::filesystem::exists(h.dir / "d"));
}

TEST_CASE("write payload must match its declared size", "[fuse]") {
    Harness h;
    h.init();
    std::ofstream(h.dir / "f") << "x";
    auto entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
    fuse_open_in open{O_RDWR, 0};
    auto fh = h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open)}).as<fuse_open_out>().fh;
    fuse_write_in write{};
    write.fh = fh;
    write.size = 10;
    CHECK(h.call(FUSE_WRITE, entry.nodeid, {bytes_of(write), raw_bytes("short")}).error() ==
          EINVAL);
    write.size = 5;
    auto ok = h.call(FUSE_WRITE, entry.nodeid, {bytes_of(write), raw_bytes("hello")});
    REQUIRE(ok.error() == 0);
    CHECK(ok.as<fuse_write_out>().size == 5);
    CHECK(std::filesystem::file_size(h.dir / "f") == 5);
}

TEST_CASE("unknown opcodes and DAX opcodes without a mapper reply ENOSYS", "[fuse]") {
    Harness h;
    h.init();
    CHECK(h.call(FUSE_IOCTL, FUSE_ROOT_ID, {Bytes(32)}).error() == ENOSYS);
    CHECK(h.call(FUSE_BMAP, FUSE_ROOT_ID, {Bytes(16)}).error() == ENOSYS);
    CHECK(h.call(9999, FUSE_ROOT_ID, {}).error() == ENOSYS);
    fuse_setupmapping_in map{};
    CHECK(h.call(FUSE_SETUPMAPPING, FUSE_ROOT_ID, {bytes_of(map)}).error() == ENOSYS);
    CHECK(h.call(FUSE_REMOVEMAPPING, FUSE_ROOT_ID, {Bytes(20)}).error() == ENOSYS);
}

TEST_CASE("read-only share refuses every change with EROFS", "[fuse]") {
    Harness h(FuseOptions{.read_only = true});
    h.init();
    std::ofstream(h.dir / "f") << "data";
    fuse_mkdir_in mkdir{0755, 0};
    CHECK(h.call(FUSE_MKDIR, FUSE_ROOT_ID, {bytes_of(mkdir), cstr("d")}).error() == EROFS);
    CHECK(h.call(FUSE_UNLINK, FUSE_ROOT_ID, {cstr("f")}).error() == EROFS);
    fuse_create_in create{O_WRONLY, 0644, 0, 0};
    CHECK(h.call(FUSE_CREATE, FUSE_ROOT_ID, {bytes_of(create), cstr("n")}).error() == EROFS);
    auto entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
    fuse_open_in open_w{O_WRONLY, 0};
    CHECK(h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open_w)}).error() == EROFS);
    fuse_open_in open_r{O_RDONLY, 0};
    CHECK(h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open_r)}).error() == 0);
    // A read-only open asking to kill set-id bits changes no mode.
    REQUIRE(::chmod((h.dir / "f").c_str(), 04755) == 0);
    fuse_open_in open_kill{O_RDONLY, FUSE_OPEN_KILL_SUIDGID};
    CHECK(h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open_kill)}).error() == 0);
    struct stat st {};
    REQUIRE(::stat((h.dir / "f").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 04755);
    fuse_access_in access{W_OK, 0};
    CHECK(h.call(FUSE_ACCESS, entry.nodeid, {bytes_of(access)}).error() == EROFS);
    CHECK(std::filesystem::exists(h.dir / "f"));
    CHECK(!std::filesystem::exists(h.dir / "d"));
}

TEST_CASE("xattr off: the xattr opcodes reply ENOSYS", "[fuse]") {
    Harness h(FuseOptions{.xattr = false});
    h.init();
    fuse_getxattr_in get{0, 0};
    CHECK(h.call(FUSE_GETXATTR, FUSE_ROOT_ID, {bytes_of(get), cstr("user.a")}).error() == ENOSYS);
    CHECK(h.call(FUSE_LISTXATTR, FUSE_ROOT_ID, {bytes_of(get)}).error() == ENOSYS);
}

TEST_CASE("xattr policy: security.capability and trusted.* only where allowed", "[fuse]") {
    // File capabilities are honoured on the host whoever runs the file; trusted.* is root's.
    auto setxattr = [](Harness& h, const char* name) {
        const Bytes value = raw_bytes("v");
        fuse_setxattr_in in{};
        in.size = static_cast<uint32_t>(value.size());
        Bytes fixed = bytes_of(in);
        fixed.resize(FUSE_COMPAT_SETXATTR_IN_SIZE);
        return h.call(FUSE_SETXATTR, FUSE_ROOT_ID, {fixed, cstr(name), value}).error();
    };
    auto removexattr = [](Harness& h, const char* name) {
        return h.call(FUSE_REMOVEXATTR, FUSE_ROOT_ID, {cstr(name)}).error();
    };
    Harness h(FuseOptions{.xattr = true});
    h.init();
    CHECK(setxattr(h, "security.capability") == EPERM);
    CHECK(setxattr(h, "trusted.overlay.opaque") == EPERM);
    CHECK(removexattr(h, "security.capability") == EPERM);
    CHECK(removexattr(h, "trusted.overlay.opaque") == EPERM);
    CHECK(::getxattr(h.dir.path().c_str(), "trusted.overlay.opaque", nullptr, 0) < 0);
    // Names that merely look alike are the backend's business.
    CHECK(setxattr(h, "user.trusted.x") == 0);
    CHECK(setxattr(h, "security.capabilityx") != EPERM);

    Harness allowed(FuseOptions{.xattr = true, .xattr_capability = true, .xattr_trusted = true});
    allowed.init();
    if (::geteuid() == 0) {
        CHECK(setxattr(allowed, "trusted.overlay.opaque") == 0);
        char v[4] = {};
        CHECK(::getxattr(allowed.dir.path().c_str(), "trusted.overlay.opaque", v, sizeof(v)) == 1);
        CHECK(removexattr(allowed, "trusted.overlay.opaque") == 0);
    }
    // Reaches the host, which checks the value's format (a one-byte value is not one).
    CHECK(setxattr(allowed, "security.capability") != EPERM);
}

TEST_CASE("a request from uid or gid -1 is refused", "[fuse]") {
    // -1 is "unchanged" to setresuid and chown: a root server would create the file as root.
    Harness h;
    h.init();
    fuse_create_in create{};
    create.flags = O_RDWR;
    create.mode = S_IFREG | 0644;
    fuse_mkdir_in mkdir{0755, 0};
    for (Caller who : {Caller{UINT32_MAX, 1000, 1}, Caller{1000, UINT32_MAX, 1}}) {
        auto written =
            h.send(fuse_request(FUSE_CREATE, 77, FUSE_ROOT_ID, {bytes_of(create), cstr("c")}, who));
        REQUIRE(written);
        CHECK(parse_reply(*written, 77).error() == EINVAL);
        written =
            h.send(fuse_request(FUSE_MKDIR, 78, FUSE_ROOT_ID, {bytes_of(mkdir), cstr("d")}, who));
        REQUIRE(written);
        CHECK(parse_reply(*written, 78).error() == EINVAL);
    }
    CHECK_FALSE(std::filesystem::exists(h.dir / "c"));
    CHECK_FALSE(std::filesystem::exists(h.dir / "d"));
}

TEST_CASE("cache policy sets timeouts and open flags", "[fuse]") {
    std::ofstream probe;
    for (auto [policy, timeout, flag] :
         {std::tuple{CachePolicy::Never, 0u, uint32_t{FOPEN_DIRECT_IO}},
          std::tuple{CachePolicy::Auto, 1u, 0u},
          std::tuple{CachePolicy::Always, 86400u, uint32_t{FOPEN_KEEP_CACHE}}}) {
        Harness h(FuseOptions{.cache = policy});
        h.init();
        std::ofstream(h.dir / "f") << "x";
        auto entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
        CHECK(entry.entry_valid == timeout);
        CHECK(entry.attr_valid == timeout);
        fuse_open_in open{O_RDONLY, 0};
        auto out = h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open)}).as<fuse_open_out>();
        CHECK((out.open_flags & (FOPEN_DIRECT_IO | FOPEN_KEEP_CACHE)) == flag);
    }
}

namespace {

// Records what the server asks of the window.
class RecordingMapper final : public fs::Mapper {
public:
    uint64_t window_size() const override { return 8 << 20; }
    uint32_t map_alignment() const override { return 16; }
    std::expected<void, int> map(uint64_t window_offset, std::span<const fs::FileExtent> extents,
                                 bool writable, uint64_t owner) override {
        maps.push_back({window_offset, extents.empty() ? 0 : extents[0].length, writable, owner});
        return {};
    }
    std::expected<void, int> unmap(uint64_t window_offset, uint64_t length) override {
        unmaps.push_back({window_offset, length});
        return {};
    }
    std::expected<void, int> follow_file_size(uint64_t owner) override {
        size_follows.push_back(owner);
        return follow_result;
    }
    std::expected<void, int> sync(uint64_t) override {
        ++syncs;
        return {};
    }
    std::expected<void, int> sync_all() override {
        ++syncs_all;
        return sync_all_result;
    }
    std::expected<void, int> reset() override {
        ++resets;
        return {};
    }
    struct Map {
        uint64_t offset, length;
        bool writable;
        uint64_t owner;
    };
    std::vector<Map> maps;
    std::vector<std::pair<uint64_t, uint64_t>> unmaps;
    std::vector<uint64_t> size_follows;
    std::expected<void, int> follow_result;
    int syncs = 0;
    int syncs_all = 0;
    int resets = 0;
    std::expected<void, int> sync_all_result;
};

}  // namespace

TEST_CASE("SETUPMAPPING and REMOVEMAPPING reach the mapper, bounds checked", "[fuse]") {
    RecordingMapper mapper;
    Harness h(FuseOptions{}, &mapper);
    h.init();
    std::ofstream(h.dir / "f") << std::string(8192, 'a');
    auto entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
    fuse_setupmapping_in map{UINT64_MAX, 0, 2 << 20, FUSE_SETUPMAPPING_FLAG_READ, 2 << 20};
    REQUIRE(h.call(FUSE_SETUPMAPPING, entry.nodeid, {bytes_of(map)}).error() == 0);
    REQUIRE(mapper.maps.size() == 1);
    CHECK(mapper.maps[0].offset == (2u << 20));
    CHECK(!mapper.maps[0].writable);
    CHECK(mapper.maps[0].owner == entry.nodeid);
    // Past the window, or wrapping: refused before the mapper sees it.
    map.moffset = 7 << 20;
    CHECK(h.call(FUSE_SETUPMAPPING, entry.nodeid, {bytes_of(map)}).error() == EINVAL);
    map.moffset = UINT64_MAX - 10;
    CHECK(h.call(FUSE_SETUPMAPPING, entry.nodeid, {bytes_of(map)}).error() == EINVAL);
    map.moffset = 0;
    map.flags = 1 << 5;
    CHECK(h.call(FUSE_SETUPMAPPING, entry.nodeid, {bytes_of(map)}).error() == EINVAL);
    CHECK(mapper.maps.size() == 1);

    fuse_removemapping_in remove{2};
    fuse_removemapping_one one{0, 2 << 20};
    fuse_removemapping_one two{2 << 20, 2 << 20};
    CHECK(h.call(FUSE_REMOVEMAPPING, entry.nodeid, {bytes_of(remove), bytes_of(one), bytes_of(two)})
              .error() == 0);
    CHECK(mapper.unmaps.size() == 2);
    // A count larger than the entries sent.
    remove.count = 3;
    CHECK(h.call(FUSE_REMOVEMAPPING, entry.nodeid, {bytes_of(remove), bytes_of(one)}).error() ==
          EINVAL);
    CHECK(mapper.unmaps.size() == 2);
    // FSYNC writes back the window first.
    fuse_open_in open{O_RDWR, 0};
    auto fh = h.call(FUSE_OPEN, entry.nodeid, {bytes_of(open)}).as<fuse_open_out>().fh;
    fuse_fsync_in fsync{fh, 0, 0};
    CHECK(h.call(FUSE_FSYNC, entry.nodeid, {bytes_of(fsync)}).error() == 0);
    CHECK(mapper.syncs == 1);
}

TEST_CASE("every request that may change a file's size lets the window follow, before its reply",
          "[fuse]") {
    RecordingMapper mapper;
    Harness h(FuseOptions{}, &mapper);
    h.init();
    std::ofstream(h.dir / "f") << std::string(8192, 'a');
    std::ofstream(h.dir / "g") << std::string(8192, 'b');
    const auto f = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>().nodeid;
    const auto g = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("g")}).as<fuse_entry_out>().nodeid;
    fuse_open_in open{O_RDWR, 0};
    const auto f_fh = h.call(FUSE_OPEN, f, {bytes_of(open)}).as<fuse_open_out>().fh;
    const auto g_fh = h.call(FUSE_OPEN, g, {bytes_of(open)}).as<fuse_open_out>().fh;

    fuse_setattr_in mode{};
    mode.valid = FATTR_MODE;
    mode.mode = 0600;
    REQUIRE(h.call(FUSE_SETATTR, f, {bytes_of(mode)}).error() == 0);
    fuse_getattr_in getattr{};
    REQUIRE(h.call(FUSE_GETATTR, f, {bytes_of(getattr)}).error() == 0);
    CHECK(mapper.size_follows.empty());  // nothing that changes a size

    fuse_setattr_in size{};
    size.valid = FATTR_SIZE;
    size.size = 100;
    REQUIRE(h.call(FUSE_SETATTR, f, {bytes_of(size)}).error() == 0);
    fuse_write_in write{};
    write.fh = f_fh;
    write.offset = 20000;
    write.size = 4;
    REQUIRE(h.call(FUSE_WRITE, f, {bytes_of(write), cstr("xyz")}).error() == 0);
    fuse_fallocate_in fallocate{f_fh, 0, 40000, 0, 0};
    REQUIRE(h.call(FUSE_FALLOCATE, f, {bytes_of(fallocate)}).error() == 0);
    fuse_copy_file_range_in copy{};
    copy.fh_in = f_fh;
    copy.nodeid_out = g;
    copy.fh_out = g_fh;
    copy.off_out = 50000;
    copy.len = 4096;
    REQUIRE(h.call(FUSE_COPY_FILE_RANGE, f, {bytes_of(copy)}).error() == 0);
    CHECK(mapper.size_follows == std::vector<uint64_t>{f, f, f, g});

    // A window that cannot follow fails the request with its errno: the guest must not go on
    // believing its stores reach the file.
    mapper.follow_result = std::unexpected(ENOMEM);
    size.size = 30000;
    CHECK(h.call(FUSE_SETATTR, f, {bytes_of(size)}).error() == ENOMEM);
    // A request the file system refused changed nothing and asks nothing of the window.
    size.size = 1;
    CHECK(h.call(FUSE_SETATTR, 999999, {bytes_of(size)}).error() != 0);
    CHECK(mapper.size_follows.size() == 5);
}

TEST_CASE(
    "with a mapper: INIT takes map_alignment from it, SYNCFS syncs the window, DESTROY "
    "empties it",
    "[fuse]") {
    RecordingMapper mapper;
    Harness h(FuseOptions{.inode_dax = fs::InodeDax::All}, &mapper);
    fuse_init_in in{};
    in.major = 7;
    in.minor = 38;
    in.flags = FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT | FUSE_ASYNC_READ;
    in.flags2 = static_cast<uint32_t>((FUSE_HAS_INODE_DAX | FUSE_SECURITY_CTX) >> 32);
    auto reply = h.call(FUSE_INIT, 0, {bytes_of(in)});
    REQUIRE(reply.error() == 0);
    const auto out = reply.as<fuse_init_out>();
    CHECK(out.flags == (FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT | FUSE_ASYNC_READ));
    CHECK(out.map_alignment == 16);
    // Per-inode DAX yes; a security context (not implemented) no.
    CHECK(out.flags2 == static_cast<uint32_t>(FUSE_HAS_INODE_DAX >> 32));

    fuse_syncfs_in syncfs{};
    CHECK(h.call(FUSE_SYNCFS, FUSE_ROOT_ID, {bytes_of(syncfs)}).error() == 0);
    CHECK(mapper.syncs_all == 1);
    CHECK(mapper.syncs == 0);
    // A window that fails to write back fails SYNCFS with its errno.
    mapper.sync_all_result = std::unexpected(EIO);
    CHECK(h.call(FUSE_SYNCFS, FUSE_ROOT_ID, {bytes_of(syncfs)}).error() == EIO);
    CHECK(mapper.syncs_all == 2);

    CHECK(mapper.resets == 0);
    CHECK(h.call(FUSE_DESTROY, FUSE_ROOT_ID, {}).error() == 0);
    CHECK(mapper.resets == 1);
    // A new session may start; server reset() (the device's) empties the window again.
    h.init();
    h.server.reset();
    CHECK(mapper.resets == 2);
}

TEST_CASE("without a mapper SYNCFS is the backend's alone and INIT offers no DAX", "[fuse]") {
    Harness h;
    fuse_init_in in{};
    in.major = 7;
    in.minor = 38;
    in.flags = FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT;
    in.flags2 = static_cast<uint32_t>(FUSE_HAS_INODE_DAX >> 32);
    auto out = h.call(FUSE_INIT, 0, {bytes_of(in)}).as<fuse_init_out>();
    CHECK(out.flags == FUSE_INIT_EXT);
    CHECK(out.flags2 == 0);
    CHECK(out.map_alignment == 0);
    fuse_syncfs_in syncfs{};
    CHECK(h.call(FUSE_SYNCFS, FUSE_ROOT_ID, {bytes_of(syncfs)}).error() == 0);
}

TEST_CASE("SETXATTR value length must match; BATCH_FORGET stops at the body's end", "[fuse]") {
    Harness h(FuseOptions{.xattr = true});
    h.init();
    std::ofstream(h.dir / "f") << "x";
    auto entry = h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>();
    fuse_setxattr_in in{10, 0, 0, 0};
    Bytes head = bytes_of(in);
    head.resize(FUSE_COMPAT_SETXATTR_IN_SIZE);
    CHECK(h.call(FUSE_SETXATTR, entry.nodeid, {head, cstr("user.a"), raw_bytes("short")}).error() ==
          EINVAL);
    in.size = 1 << 20;  // beyond XATTR_SIZE_MAX
    head = bytes_of(in);
    head.resize(FUSE_COMPAT_SETXATTR_IN_SIZE);
    CHECK(h.call(FUSE_SETXATTR, entry.nodeid, {head, cstr("user.a"), raw_bytes("v")}).error() ==
          E2BIG);
    char value[4];
    CHECK(getxattr((h.dir / "f").c_str(), "user.a", value, sizeof(value)) < 0);

    // A count far beyond the entries present: the one entry is applied, no reply, no crash.
    fuse_batch_forget_in batch{1000000, 0};
    fuse_forget_one one{entry.nodeid, 1};
    auto written = h.send(fuse_request(FUSE_BATCH_FORGET, 77, 0, {bytes_of(batch), bytes_of(one)}));
    REQUIRE(written);
    CHECK(written->empty());
    // The node is forgotten (its only lookup): a fresh lookup works again.
    CHECK(h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).error() == 0);
}

TEST_CASE("DESTROY completes while a SETLKW parks on another worker", "[fuse]") {
    Harness h;
    std::ofstream(h.dir / "f") << "x";
    auto lock_in = [](uint64_t fh, uint64_t owner, uint32_t type) {
        fuse_lk_in in{};
        in.fh = fh;
        in.owner = owner;
        in.lk.end = INT64_MAX;
        in.lk.type = type;
        return in;
    };
    // The race: DESTROY's stop() lets go of the waiter thread and joins it; a SETLKW parking
    // just then must not keep that thread alive. Many parked SETLKWs make the thread's retry
    // passes long, so one started just before DESTROY is still running when the SETLKW parks.
    constexpr uint64_t kParked = 64;
    for (int round = 0; round < 300; ++round) {
        h.init();
        const uint64_t node =
            h.call(FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f")}).as<fuse_entry_out>().nodeid;
        fuse_open_in open_rw{O_RDWR, 0};
        const uint64_t fh1 = h.call(FUSE_OPEN, node, {bytes_of(open_rw)}).as<fuse_open_out>().fh;
        const uint64_t fh2 = h.call(FUSE_OPEN, node, {bytes_of(open_rw)}).as<fuse_open_out>().fh;
        REQUIRE(h.call(FUSE_SETLK, node, {bytes_of(lock_in(fh1, 1, F_WRLCK))}).error() == 0);
        for (uint64_t owner = 2; owner < 2 + kParked; ++owner) {
            h.submit(fuse_request(FUSE_SETLKW, ++h.next_unique, node,
                                  {bytes_of(lock_in(fh2, owner, F_WRLCK))}));
        }
        const Bytes destroy = fuse_request(FUSE_DESTROY, ++h.next_unique, 0, {});
        const Bytes setlkw = fuse_request(FUSE_SETLKW, ++h.next_unique, node,
                                          {bytes_of(lock_in(fh2, 2 + kParked, F_WRLCK))});
        std::atomic<bool> go{false};
        // The SETLKW has more to do before it parks: DESTROY starts a little later, by a
        // different amount each round.
        const auto delay = std::chrono::microseconds(round % 16);
        auto destroyer = std::async(std::launch::async, [&] {
            while (!go) {
            }
            const auto start = std::chrono::steady_clock::now();
            while (std::chrono::steady_clock::now() - start < delay) {
            }
            return h.send(destroy);
        });
        auto parker = std::async(std::launch::async, [&] {
            while (!go) {
            }
            h.submit(setlkw);
        });
        // An unlock (of nothing) starts a retry pass.
        REQUIRE(h.call(FUSE_SETLK, node, {bytes_of(lock_in(fh1, 0, F_UNLCK))}).error() == 0);
        go = true;
        parker.wait();
        if (destroyer.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
            h.server.reset();  // stopping once more lets the stuck DESTROY return
            destroyer.wait();
            FAIL("DESTROY still waiting for the lock waiter after 2 s, round " << round);
        }
        REQUIRE(destroyer.get());
    }
}

TEST_CASE("DESTROY and INIT while OPEN and CREATE are in flight", "[fuse]") {
    // The session a backend was given (writeback, killpriv) is read by OPEN and CREATE as they
    // open files; DESTROY then INIT replaces it under them. Run under TSan, this catches a
    // racy read; anywhere, every request must still get a well-formed reply with an error
    // the race allows. Catch2 is not thread-safe: the clients count what went wrong instead.
    Harness h(FuseOptions{.writeback = true});
    std::ofstream(h.dir / "f") << "x";
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> unique{1000};
    // What went wrong, as "OPCODE:error" (-1: no reply or a malformed one).
    std::mutex bad_mutex;
    std::vector<std::string> bad;
    auto note = [&](const char* op, int error) {
        std::lock_guard lock(bad_mutex);
        bad.push_back(std::string(op) + ":" + std::to_string(error));
    };
    // The reply's error, or -1 when none came or it was malformed.
    auto reply_error = [&](const Bytes& request, uint64_t id, fuse_entry_out* entry = nullptr) {
        auto written = h.send(request);
        if (!written) return -1;
        try {
            auto reply = parse_reply(*written, id);
            // An error reply has no payload to read an entry from.
            if (entry && reply.error() == 0) *entry = reply.as<fuse_entry_out>();
            return reply.error();
        } catch (const std::exception&) {
            return -1;
        }
    };
    auto allowed = [](int error, std::initializer_list<int> errors) {
        return std::find(errors.begin(), errors.end(), error) != errors.end();
    };
    std::vector<std::future<void>> clients;
    for (int t = 0; t < 3; ++t) {
        clients.push_back(std::async(std::launch::async, [&, t] {
            for (int i = 0; !stop.load(); ++i) {
                fuse_create_in create{};
                create.flags = O_WRONLY;
                create.mode = S_IFREG | 0644;
                const uint64_t id = unique.fetch_add(1);
                const std::string name = "c" + std::to_string(t) + "-" + std::to_string(i % 8);
                // EIO between DESTROY and INIT. An existing name is looked up, then opened as
                // a node: a DESTROY in between forgets that node (ENOENT, or ESTALE).
                const int created = reply_error(
                    fuse_request(FUSE_CREATE, id, FUSE_ROOT_ID, {bytes_of(create), cstr(name)}),
                    id);
                if (!allowed(created, {0, EIO, ENOENT, ESTALE})) note("CREATE", created);
                const uint64_t look = unique.fetch_add(1);
                fuse_entry_out entry{};
                const int found = reply_error(
                    fuse_request(FUSE_LOOKUP, look, FUSE_ROOT_ID, {cstr("f")}), look, &entry);
                if (!allowed(found, {0, EIO})) note("LOOKUP", found);
                if (found != 0) continue;
                fuse_open_in open{};
                open.flags = O_WRONLY;
                const uint64_t id2 = unique.fetch_add(1);
                // A node from a session that ended since is unknown to the next one.
                const int opened =
                    reply_error(fuse_request(FUSE_OPEN, id2, entry.nodeid, {bytes_of(open)}), id2);
                if (!allowed(opened, {0, EIO, ESTALE, ENOENT})) note("OPEN", opened);
            }
        }));
    }
    for (int round = 0; round < 200; ++round) {
        fuse_init_in init{};
        init.major = 7;
        init.minor = 37;
        init.flags = round % 2 ? FUSE_WRITEBACK_CACHE | FUSE_HANDLE_KILLPRIV_V2 : 0;
        const uint64_t id = unique.fetch_add(1);
        CHECK(reply_error(fuse_request(FUSE_INIT, id, 0, {bytes_of(init)}), id) == 0);
        const uint64_t bye = unique.fetch_add(1);
        CHECK(reply_error(fuse_request(FUSE_DESTROY, bye, 0, {}), bye) == 0);
    }
    stop = true;
    for (auto& c : clients) c.get();
    CHECK(bad == std::vector<std::string>{});
}
