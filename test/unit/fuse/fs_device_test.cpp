// SPDX-License-Identifier: Apache-2.0
// FsDevice tests: config space and queue roles, then every opcode through the split-ring driver
// model and the device against a temporary host directory, checked on the host; readdir
// offsets, blocked SETLKW, INTERRUPT, concurrent request queues, reset.
#include "vfsdax/fs/fs_device.hpp"

#include <fcntl.h>
#include <linux/virtio_fs.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "tasks.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;
using namespace vfsdax::test;
using fs::FsDevice;
using fs::FsDeviceOptions;

namespace {

class CountingInterrupt final : public virtio::Interrupt {
public:
    void queue_used(uint16_t index) override { ++used[index % 8]; }
    void config_changed() override {}
    void needs_reset(std::string_view why) override {
        {
            std::lock_guard lock(mutex);
            reason = why;
        }
        ++resets;
    }
    std::atomic<int> used[8] = {};
    std::atomic<int> resets{0};
    std::mutex mutex;
    std::string reason;
};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The guest: split queues over TestMemory, a FUSE client per queue, the device under test.
class Guest {
public:
    // Without `activate_now`, requests submitted before activate() wait in the rings, as
    // buffers a driver makes available before DRIVER_OK.
    explicit Guest(FsDeviceOptions options = default_options(), bool negotiate_notification = false,
                   bool activate_now = true)
        : memory_(64 << 20), backend_(fs::make_passthrough({.root = dir.path().string()}).value()) {
        auto device = FsDevice::create(options, *backend_);
        REQUIRE(device);
        device_ = std::move(*device);
        features_ = device_->device_features() & ~virtio::feature_bit(VIRTIO_F_RING_PACKED);
        if (!negotiate_notification) {
            features_ &= ~virtio::feature_bit(virtio::kFsFeatureNotification);
        }
        for (std::size_t i = 0; i < device_->queue_max_sizes().size(); ++i) {
            clients_.push_back(std::make_unique<FuseQueueClient>(
                memory_, 128, features_, 64, (1 << 17) + 4096, (1 << 17) + 4096));
            auto q = virtio::activate_queue(clients_.back()->driver().config(), memory_.memory(),
                                            features_);
            REQUIRE(q);
            queues_.push_back(std::move(*q));
        }
        if (activate_now) activate();
    }
    ~Guest() { device_->reset(); }

    void activate() {
        REQUIRE(device_->activate(memory_.memory(), interrupt, features_, std::move(queues_)));
    }

    static FsDeviceOptions default_options() {
        FsDeviceOptions o;
        o.tag = "share";
        o.queue_size = 128;  // what the driver model sets up
        o.threads = 3;
        o.fuse.xattr = true;
        return o;
    }

    FsDevice& device() { return *device_; }
    FuseQueueClient& client(uint16_t queue) { return *clients_.at(queue); }

    uint64_t submit(uint16_t queue, uint32_t opcode, uint64_t nodeid,
                    std::initializer_list<Bytes> args, uint32_t reply_size = 0) {
        const uint64_t unique = next_unique_.fetch_add(1) + 1;
        const uint16_t head =
            client(queue).add(fuse_request(opcode, unique, nodeid, args), reply_size);
        std::lock_guard lock(mutex_);
        head_of_[unique] = head;
        if (client(queue).publish()) device_->queue_notified(queue, 0);
        return unique;
    }
    // Waits for request `unique` on `queue`; other completions are kept for their waiters.
    std::optional<FuseReply> wait(uint16_t queue, uint64_t unique,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        uint16_t head;
        {
            std::lock_guard lock(mutex_);
            head = head_of_.at(unique);
        }
        for (;;) {
            {
                std::lock_guard lock(mutex_);
                auto& done = done_[queue];
                if (auto it = done.find(head); it != done.end()) {
                    Bytes written = std::move(it->second);
                    done.erase(it);
                    head_of_.erase(unique);
                    return written.empty() ? FuseReply{} : parse_reply(written, unique);
                }
                while (auto c = client(queue).poll())
                    done[c->head] = Bytes(c->written.begin(), c->written.end());
                if (done.count(head)) continue;
            }
            if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    FuseReply call(uint16_t queue, uint32_t opcode, uint64_t nodeid,
                   std::initializer_list<Bytes> args, uint32_t reply_size = 0) {
        const uint64_t unique = submit(queue, opcode, nodeid, args, reply_size);
        auto reply = wait(queue, unique);
        REQUIRE(reply);
        return *reply;
    }
    // The request queue Linux 6.1 uses.
    FuseReply call(uint32_t opcode, uint64_t nodeid, std::initializer_list<Bytes> args,
                   uint32_t reply_size = 0) {
        return call(1, opcode, nodeid, args, reply_size);
    }

    fuse_init_out init() {
        fuse_init_in in{};
        in.major = 7;
        in.minor = 37;
        in.flags = 0xffffffffu;
        auto reply = call(FUSE_INIT, 0, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_init_out>();
    }
    fuse_entry_out lookup(uint64_t parent, const std::string& name) {
        auto reply = call(FUSE_LOOKUP, parent, {cstr(name)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_entry_out>();
    }
    uint64_t open(uint64_t node, uint32_t flags, uint32_t opcode = FUSE_OPEN) {
        fuse_open_in in{flags, 0};
        auto reply = call(opcode, node, {bytes_of(in)});
        REQUIRE(reply.error() == 0);
        return reply.as<fuse_open_out>().fh;
    }

    TempDir dir;
    CountingInterrupt interrupt;

private:
    TestMemory memory_;
    std::unique_ptr<fs::FileSystem> backend_;
    std::unique_ptr<FsDevice> device_;
    uint64_t features_ = 0;
    std::vector<std::unique_ptr<FuseQueueClient>> clients_;
    std::vector<std::unique_ptr<virtio::Queue>> queues_;  // until activate()
    std::atomic<uint64_t> next_unique_{0};
    std::mutex mutex_;
    std::map<uint64_t, uint16_t> head_of_;
    std::map<uint16_t, std::map<uint16_t, Bytes>> done_;
};

fuse_lk_in lock_request(uint64_t fh, uint64_t owner, uint32_t type, uint64_t start = 0,
                        uint64_t end = INT64_MAX) {
    fuse_lk_in in{};
    in.fh = fh;
    in.owner = owner;
    in.lk.start = start;
    in.lk.end = end;
    in.lk.type = type;
    in.lk.pid = 1;
    return in;
}

}  // namespace

TEST_CASE("create() checks the tag and the queue options", "[fs_device]") {
    TempDir dir;
    auto backend = fs::make_passthrough({.root = dir.path().string()}).value();
    auto with_tag = [&](std::string tag) {
        FsDeviceOptions o;
        o.tag = std::move(tag);
        return FsDevice::create(o, *backend).has_value();
    };
    CHECK(with_tag("a"));
    CHECK(with_tag(std::string(36, 'x')));
    CHECK(with_tag("\xc3\xa9t\xc3\xa9"));  // "été"
    CHECK(!with_tag(""));
    CHECK(!with_tag(std::string(37, 'x')));
    CHECK(!with_tag(std::string("a\0b", 3)));
    CHECK(!with_tag("\xc3"));          // truncated sequence
    CHECK(!with_tag("\xc0\xaf"));      // overlong '/'
    CHECK(!with_tag("\xed\xa0\x80"));  // surrogate
    FsDeviceOptions o;
    o.tag = "t";
    o.num_request_queues = 0;
    CHECK(!FsDevice::create(o, *backend));
    o.num_request_queues = 1;
    o.threads = 0;
    CHECK(!FsDevice::create(o, *backend));
}

TEST_CASE("config space, features and queue layout follow the notification feature",
          "[fs_device]") {
    TempDir dir;
    auto backend = fs::make_passthrough({.root = dir.path().string()}).value();
    FsDeviceOptions o;
    o.tag = "myfs";
    o.num_request_queues = 3;

    auto plain = FsDevice::create(o, *backend).value();
    CHECK(plain->device_type() == VIRTIO_ID_FS);
    CHECK(plain->queue_max_sizes().size() == 4);
    CHECK((plain->device_features() & virtio::feature_bit(virtio::kFsFeatureNotification)) == 0);
    CHECK((plain->device_features() & virtio::feature_bit(VIRTIO_F_VERSION_1)) != 0);
    CHECK(plain->config_size() == sizeof(virtio_fs_config));
    virtio_fs_config config{};
    plain->read_config(0, {reinterpret_cast<std::byte*>(&config), sizeof(config)});
    CHECK(std::string(reinterpret_cast<char*>(config.tag), 4) == "myfs");
    CHECK(config.tag[4] == 0);
    CHECK(config.tag[35] == 0);
    CHECK(le32toh(config.num_request_queues) == 3);
    uint32_t beyond = 0xffffffff;
    plain->read_config(40, {reinterpret_cast<std::byte*>(&beyond), 4});
    CHECK(beyond == 0);

    o.notification = true;
    o.notify_buf_size = 4096;
    auto notif = FsDevice::create(o, *backend).value();
    CHECK(notif->queue_max_sizes().size() == 5);
    CHECK((notif->device_features() & virtio::feature_bit(virtio::kFsFeatureNotification)) != 0);
    CHECK(notif->config_size() == 44);
    uint32_t size = 0;
    notif->read_config(40, {reinterpret_cast<std::byte*>(&size), 4});
    CHECK(le32toh(size) == 4096);
    // Driver writes are ignored: every field is read-only.
    const std::byte junk[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    notif->write_config(36, junk);
    notif->read_config(36, {reinterpret_cast<std::byte*>(&size), 4});
    CHECK(le32toh(size) == 3);
}

TEST_CASE("packed rings are offered unless switched off; no window, no shared memory",
          "[fs_device]") {
    TempDir dir;
    auto backend = fs::make_passthrough({.root = dir.path().string()}).value();
    FsDeviceOptions o;
    o.tag = "rings";
    const uint64_t packed = virtio::feature_bit(VIRTIO_F_RING_PACKED);
    auto with = FsDevice::create(o, *backend).value();
    CHECK((with->device_features() & packed) != 0);
    o.packed_ring = false;
    auto without = FsDevice::create(o, *backend).value();
    CHECK((without->device_features() & packed) == 0);
    // Everything else stays offered.
    CHECK(without->device_features() == (with->device_features() & ~packed));
    CHECK(without->shared_memory_regions().empty());
}

TEST_CASE("every opcode through the device, checked on the host", "[fs_device]") {
    Guest g;
    const fuse_init_out init = g.init();
    CHECK(init.max_write == (128 - 4) * 4096u);  // bounded by what a 128-entry chain carries
    const uint64_t root = FUSE_ROOT_ID;

    // GETATTR, MKDIR, CREATE, WRITE, READ, FLUSH, FSYNC, RELEASE.
    fuse_getattr_in getattr{};
    auto attr = g.call(FUSE_GETATTR, root, {bytes_of(getattr)});
    REQUIRE(attr.error() == 0);
    struct stat root_st;
    REQUIRE(stat(g.dir.path().c_str(), &root_st) == 0);
    CHECK(attr.as<fuse_attr_out>().attr.ino == root_st.st_ino);
    fuse_mkdir_in mkdir{0750, 0};
    auto dir = g.call(FUSE_MKDIR, root, {bytes_of(mkdir), cstr("d")});
    REQUIRE(dir.error() == 0);
    CHECK(std::filesystem::is_directory(g.dir / "d"));
    const uint64_t d = dir.as<fuse_entry_out>().nodeid;

    fuse_create_in create{O_RDWR, 0640, 0, 0};
    auto created = g.call(FUSE_CREATE, d, {bytes_of(create), cstr("f")});
    REQUIRE(created.error() == 0);
    REQUIRE(created.payload.size() == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    const uint64_t f = created.as<fuse_entry_out>().nodeid;
    fuse_open_out opened{};
    std::memcpy(&opened, created.payload.data() + sizeof(fuse_entry_out), sizeof(opened));
    const uint64_t fh = opened.fh;
    CHECK(std::filesystem::is_regular_file(g.dir / "d" / "f"));

    std::string data(128 * 1024, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
    fuse_write_in write{};
    write.fh = fh;
    write.size = static_cast<uint32_t>(data.size());
    auto wrote = g.call(FUSE_WRITE, f, {bytes_of(write), raw_bytes(data)});
    REQUIRE(wrote.error() == 0);
    CHECK(wrote.as<fuse_write_out>().size == data.size());
    CHECK(slurp(g.dir / "d" / "f") == data);

    fuse_read_in read{};
    read.fh = fh;
    read.offset = 100;
    read.size = 5000;
    auto got = g.call(FUSE_READ, f, {bytes_of(read)});
    REQUIRE(got.error() == 0);
    CHECK(got.text() == data.substr(100, 5000));
    read.offset = data.size() - 10;
    CHECK(g.call(FUSE_READ, f, {bytes_of(read)}).text() == data.substr(data.size() - 10));

    fuse_flush_in flush{fh, 0, 0, 7};
    CHECK(g.call(FUSE_FLUSH, f, {bytes_of(flush)}).error() == 0);
    fuse_fsync_in fsync{fh, FUSE_FSYNC_FDATASYNC, 0};
    CHECK(g.call(FUSE_FSYNC, f, {bytes_of(fsync)}).error() == 0);

    // FALLOCATE, LSEEK, SETATTR (size, mode, times).
    fuse_fallocate_in falloc{fh, 0, 1 << 20, 0, 0};
    CHECK(g.call(FUSE_FALLOCATE, f, {bytes_of(falloc)}).error() == 0);
    CHECK(std::filesystem::file_size(g.dir / "d" / "f") == (1u << 20));
    fuse_lseek_in seek{fh, 0, SEEK_END, 0};
    auto sought = g.call(FUSE_LSEEK, f, {bytes_of(seek)});
    REQUIRE(sought.error() == 0);
    CHECK(sought.as<fuse_lseek_out>().offset == (1u << 20));
    fuse_setattr_in setattr{};
    setattr.valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME;
    setattr.size = data.size();
    setattr.mode = 0600;
    setattr.mtime = 1000000;
    auto set = g.call(FUSE_SETATTR, f, {bytes_of(setattr)});
    REQUIRE(set.error() == 0);
    struct stat st;
    REQUIRE(stat((g.dir / "d" / "f").c_str(), &st) == 0);
    CHECK(st.st_size == static_cast<off_t>(data.size()));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_mtime == 1000000);
    CHECK(set.as<fuse_attr_out>().attr.size == data.size());

    // COPY_FILE_RANGE into a second file.
    fuse_create_in create2{O_RDWR, 0644, 0, 0};
    auto created2 = g.call(FUSE_CREATE, d, {bytes_of(create2), cstr("g")});
    REQUIRE(created2.error() == 0);
    const uint64_t g2 = created2.as<fuse_entry_out>().nodeid;
    fuse_open_out opened2{};
    std::memcpy(&opened2, created2.payload.data() + sizeof(fuse_entry_out), sizeof(opened2));
    fuse_copy_file_range_in copy{fh, 10, g2, opened2.fh, 0, 1000, 0};
    auto copied = g.call(FUSE_COPY_FILE_RANGE, f, {bytes_of(copy)});
    REQUIRE(copied.error() == 0);
    CHECK(copied.as<fuse_write_out>().size == 1000);
    CHECK(slurp(g.dir / "d" / "g") == data.substr(10, 1000));

    fuse_release_in release{fh, 0, 0, 0};
    CHECK(g.call(FUSE_RELEASE, f, {bytes_of(release)}).error() == 0);
    fuse_release_in release2{opened2.fh, 0, 0, 0};
    CHECK(g.call(FUSE_RELEASE, g2, {bytes_of(release2)}).error() == 0);

    // OPEN an existing file, STATFS, ACCESS.
    const uint64_t rfh = g.open(f, O_RDONLY);
    fuse_release_in rrelease{rfh, 0, 0, 0};
    CHECK(g.call(FUSE_RELEASE, f, {bytes_of(rrelease)}).error() == 0);
    auto statfs = g.call(FUSE_STATFS, root, {});
    REQUIRE(statfs.error() == 0);
    CHECK(statfs.as<fuse_statfs_out>().st.bsize > 0);
    fuse_access_in access{R_OK | W_OK, 0};
    CHECK(g.call(FUSE_ACCESS, f, {bytes_of(access)}).error() == 0);

    // SYMLINK, READLINK, LINK, MKNOD.
    auto link = g.call(FUSE_SYMLINK, d, {cstr("s"), cstr("f")});
    REQUIRE(link.error() == 0);
    CHECK(std::filesystem::read_symlink(g.dir / "d" / "s") == "f");
    CHECK((link.as<fuse_entry_out>().attr.mode & S_IFMT) == S_IFLNK);
    auto target = g.call(FUSE_READLINK, link.as<fuse_entry_out>().nodeid, {});
    REQUIRE(target.error() == 0);
    CHECK(target.text() == "f");
    fuse_link_in hard{f};
    auto linked = g.call(FUSE_LINK, root, {bytes_of(hard), cstr("hard")});
    REQUIRE(linked.error() == 0);
    CHECK(std::filesystem::equivalent(g.dir / "hard", g.dir / "d" / "f"));
    CHECK(linked.as<fuse_entry_out>().attr.nlink == 2);
    fuse_mknod_in mknod{S_IFIFO | 0600, 0, 0, 0};
    REQUIRE(g.call(FUSE_MKNOD, d, {bytes_of(mknod), cstr("p")}).error() == 0);
    CHECK(std::filesystem::is_fifo(g.dir / "d" / "p"));

    // Extended attributes.
    fuse_setxattr_in setx{5, 0, 0, 0};
    Bytes setx_head = bytes_of(setx);
    setx_head.resize(FUSE_COMPAT_SETXATTR_IN_SIZE);
    REQUIRE(g.call(FUSE_SETXATTR, f, {setx_head, cstr("user.k"), raw_bytes("value")}).error() == 0);
    char value[16] = {};
    CHECK(getxattr((g.dir / "d" / "f").c_str(), "user.k", value, sizeof(value)) == 5);
    CHECK(std::string(value, 5) == "value");
    fuse_getxattr_in getx{0, 0};
    auto probe = g.call(FUSE_GETXATTR, f, {bytes_of(getx), cstr("user.k")});
    REQUIRE(probe.error() == 0);
    CHECK(probe.as<fuse_getxattr_out>().size == 5);
    getx.size = 64;
    CHECK(g.call(FUSE_GETXATTR, f, {bytes_of(getx), cstr("user.k")}).text() == "value");
    getx.size = 2;
    CHECK(g.call(FUSE_GETXATTR, f, {bytes_of(getx), cstr("user.k")}).error() == ERANGE);
    getx.size = 256;
    CHECK(g.call(FUSE_LISTXATTR, f, {bytes_of(getx)}).text().find("user.k") != std::string::npos);
    REQUIRE(g.call(FUSE_REMOVEXATTR, f, {cstr("user.k")}).error() == 0);
    CHECK(getxattr((g.dir / "d" / "f").c_str(), "user.k", value, sizeof(value)) < 0);

    // RENAME, RENAME2 (NOREPLACE, EXCHANGE).
    fuse_rename_in rename{root};
    REQUIRE(g.call(FUSE_RENAME, d, {bytes_of(rename), cstr("g"), cstr("moved")}).error() == 0);
    CHECK(std::filesystem::exists(g.dir / "moved"));
    CHECK(!std::filesystem::exists(g.dir / "d" / "g"));
    fuse_rename2_in noreplace{root, RENAME_NOREPLACE, 0};
    CHECK(g.call(FUSE_RENAME2, d, {bytes_of(noreplace), cstr("f"), cstr("moved")}).error() ==
          EEXIST);
    fuse_rename2_in exchange{root, RENAME_EXCHANGE, 0};
    REQUIRE(g.call(FUSE_RENAME2, d, {bytes_of(exchange), cstr("f"), cstr("moved")}).error() == 0);
    CHECK(slurp(g.dir / "moved") == data);
    CHECK(slurp(g.dir / "d" / "f") == data.substr(10, 1000));

    // TMPFILE: an unnamed file in d.
    fuse_create_in tmp{O_RDWR, 0600, 0, 0};
    auto tmpfile = g.call(FUSE_TMPFILE, d, {bytes_of(tmp), cstr("/")});
    if (tmpfile.error() != EOPNOTSUPP) {
        REQUIRE(tmpfile.error() == 0);
        CHECK(tmpfile.as<fuse_entry_out>().attr.nlink == 0);
    }

    // UNLINK, RMDIR, SYNCFS, FORGET, BATCH_FORGET.
    REQUIRE(g.call(FUSE_UNLINK, root, {cstr("hard")}).error() == 0);
    CHECK(!std::filesystem::exists(g.dir / "hard"));
    CHECK(g.call(FUSE_RMDIR, root, {cstr("d")}).error() == ENOTEMPTY);
    for (const char* name : {"f", "s", "p"}) {
        REQUIRE(g.call(FUSE_UNLINK, d, {cstr(name)}).error() == 0);
    }
    REQUIRE(g.call(FUSE_RMDIR, root, {cstr("d")}).error() == 0);
    CHECK(!std::filesystem::exists(g.dir / "d"));
    fuse_syncfs_in syncfs{};
    CHECK(g.call(FUSE_SYNCFS, root, {bytes_of(syncfs)}).error() == 0);

    // FORGET on hiprio: no reply, the chain comes back with nothing written.
    fuse_forget_in forget{1};
    auto forgot = g.call(0, FUSE_FORGET, f, {bytes_of(forget)});
    CHECK(forgot.header.len == 0);
    fuse_batch_forget_in batch{1, 0};
    fuse_forget_one one{g2, 1};
    CHECK(g.call(0, FUSE_BATCH_FORGET, 0, {bytes_of(batch), bytes_of(one)}).header.len == 0);

    // DESTROY ends the session; requests then get EIO until the next INIT.
    CHECK(g.call(FUSE_DESTROY, 0, {}).error() == 0);
    CHECK(g.call(FUSE_GETATTR, root, {bytes_of(getattr)}).error() == EIO);
    g.init();
    CHECK(g.call(FUSE_GETATTR, root, {bytes_of(getattr)}).error() == 0);
}

TEST_CASE("readdir offsets are stable across calls and handles", "[fs_device]") {
    Guest g;
    g.init();
    std::set<std::string> made;
    for (int i = 0; i < 60; ++i) {
        const std::string name = "entry-with-a-longish-name-" + std::to_string(i);
        std::ofstream(g.dir / name) << i;
        made.insert(name);
    }
    for (uint32_t opcode : {FUSE_READDIR, FUSE_READDIRPLUS}) {
        const bool plus = opcode == FUSE_READDIRPLUS;
        const uint64_t fh = g.open(FUSE_ROOT_ID, O_RDONLY, FUSE_OPENDIR);
        // Small replies: several calls, each resuming from the last entry's offset.
        std::vector<Dirent> all;
        uint64_t offset = 0;
        for (int calls = 0; calls < 100; ++calls) {
            fuse_read_in read{};
            read.fh = fh;
            read.offset = offset;
            read.size = 512;
            auto reply = g.call(opcode, FUSE_ROOT_ID, {bytes_of(read)});
            REQUIRE(reply.error() == 0);
            auto page = parse_dirents(reply.payload, plus);
            if (page.empty()) break;
            all.insert(all.end(), page.begin(), page.end());
            offset = page.back().off;
        }
        std::set<std::string> seen;
        for (const Dirent& e : all) {
            CHECK(seen.insert(e.name).second);  // no entry twice
            if (plus && e.name != "." && e.name != "..") {
                CHECK(e.entry->nodeid != 0);
                CHECK(e.entry->attr.ino == e.ino);
            }
        }
        for (const std::string& name : made) CHECK(seen.count(name) == 1);

        // Resuming from an offset in the middle on a fresh handle gives the same tail.
        const std::size_t middle = all.size() / 2;
        const uint64_t fh2 = g.open(FUSE_ROOT_ID, O_RDONLY, FUSE_OPENDIR);
        fuse_read_in read{};
        read.fh = fh2;
        read.offset = all[middle - 1].off;
        read.size = 4096;
        auto reply = g.call(opcode, FUSE_ROOT_ID, {bytes_of(read)});
        REQUIRE(reply.error() == 0);
        auto tail = parse_dirents(reply.payload, plus);
        REQUIRE(!tail.empty());
        CHECK(tail.front().name == all[middle].name);
        CHECK(tail.front().off == all[middle].off);
        for (uint64_t h : {fh, fh2}) {
            fuse_release_in release{h, 0, 0, 0};
            CHECK(g.call(FUSE_RELEASEDIR, FUSE_ROOT_ID, {bytes_of(release)}).error() == 0);
        }
        if (plus) {
            // Balance the lookups readdirplus counted.
            for (const Dirent& e : all) {
                if (e.entry && e.entry->nodeid) {
                    fuse_forget_in forget{1};
                    g.call(0, FUSE_FORGET, e.entry->nodeid, {bytes_of(forget)});
                }
            }
        }
    }
}

TEST_CASE("locks: conflicts, a blocked SETLKW while others proceed, INTERRUPT", "[fs_device]") {
    Guest g;
    g.init();
    std::ofstream(g.dir / "lockme") << "x";
    const uint64_t node = g.lookup(FUSE_ROOT_ID, "lockme").nodeid;
    const uint64_t fh_a = g.open(node, O_RDWR);
    const uint64_t fh_b = g.open(node, O_RDWR);

    auto a_lock = lock_request(fh_a, 1, F_WRLCK);
    REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(a_lock)}).error() == 0);
    // GETLK from the other handle sees the conflict.
    auto probe = lock_request(fh_b, 2, F_WRLCK);
    auto conflict = g.call(FUSE_GETLK, node, {bytes_of(probe)});
    REQUIRE(conflict.error() == 0);
    CHECK(conflict.as<fuse_lk_out>().lk.type == F_WRLCK);
    // Non-blocking SETLK fails at once.
    CHECK(g.call(FUSE_SETLK, node, {bytes_of(probe)}).error() == EAGAIN);

    // SETLKW blocks; other requests on the same queue are still served.
    const uint64_t waiting = g.submit(1, FUSE_SETLKW, node, {bytes_of(probe)});
    CHECK(!g.wait(1, waiting, std::chrono::milliseconds(100)));
    fuse_getattr_in getattr{};
    for (int i = 0; i < 10; ++i) {
        CHECK(g.call(FUSE_GETATTR, node, {bytes_of(getattr)}).error() == 0);
    }
    CHECK(!g.wait(1, waiting, std::chrono::milliseconds(10)));
    // Unlock: the waiter gets its lock.
    auto unlock = lock_request(fh_a, 1, F_UNLCK);
    REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(unlock)}).error() == 0);
    auto granted = g.wait(1, waiting);
    REQUIRE(granted);
    CHECK(granted->error() == 0);
    // Now a's attempt waits, and INTERRUPT cancels it with EINTR.
    const uint64_t second = g.submit(1, FUSE_SETLKW, node, {bytes_of(a_lock)});
    CHECK(!g.wait(1, second, std::chrono::milliseconds(50)));
    fuse_interrupt_in interrupt{second};
    CHECK(g.call(0, FUSE_INTERRUPT, 0, {bytes_of(interrupt)}).header.len == 0);
    auto cancelled = g.wait(1, second);
    REQUIRE(cancelled);
    CHECK(cancelled->error() == EINTR);

    // flock through FUSE_LK_FLOCK.
    auto b_unlock = lock_request(fh_b, 2, F_UNLCK);
    REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(b_unlock)}).error() == 0);
    auto flock_a = lock_request(fh_a, 1, F_WRLCK);
    flock_a.lk_flags = FUSE_LK_FLOCK;
    REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(flock_a)}).error() == 0);
    auto flock_b = lock_request(fh_b, 2, F_WRLCK);
    flock_b.lk_flags = FUSE_LK_FLOCK;
    CHECK(g.call(FUSE_SETLK, node, {bytes_of(flock_b)}).error() == EAGAIN);
}

TEST_CASE("a blocked SETLKW does not stop reset()", "[fs_device]") {
    auto g = std::make_unique<Guest>();
    g->init();
    std::ofstream(g->dir / "l") << "x";
    const uint64_t node = g->lookup(FUSE_ROOT_ID, "l").nodeid;
    const uint64_t fh_a = g->open(node, O_RDWR);
    const uint64_t fh_b = g->open(node, O_RDWR);
    auto a = lock_request(fh_a, 1, F_WRLCK);
    REQUIRE(g->call(FUSE_SETLK, node, {bytes_of(a)}).error() == 0);
    auto b = lock_request(fh_b, 2, F_WRLCK);
    g->submit(1, FUSE_SETLKW, node, {bytes_of(b)});
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const auto start = std::chrono::steady_clock::now();
    g->device().reset();
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

TEST_CASE("start_thread starts every worker, and requests are served on those", "[fs_device]") {
    FsDeviceOptions options = Guest::default_options();
    std::mutex mutex;
    std::set<std::thread::id> started;
    std::atomic<int> on_started{0};
    options.start_thread = [&](std::function<void()> body) {
        // Each worker waits until its creator has recorded it, then checks it was.
        std::lock_guard lock(mutex);
        std::thread t([&, body = std::move(body)] {
            {
                std::lock_guard own(mutex);
                if (started.count(std::this_thread::get_id())) ++on_started;
            }
            body();
        });
        started.insert(t.get_id());
        return t;
    };
    Guest g(options, false, false);
    // Threads are started when the driver activates the device, not before.
    CHECK(started.empty());
    g.activate();
    g.init();
    g.device().reset();
    CHECK(started.size() == options.threads);
    CHECK(on_started == static_cast<int>(options.threads));
}

namespace {
// Whether the thread `tid` blocks SIGUSR2 (SigBlk: the mask in hex, bit N-1 for signal N).
bool blocks_sigusr2(const std::string& tid) {
    auto mask = task_status(tid, "SigBlk");
    REQUIRE(mask);
    return (std::stoull(*mask, nullptr, 16) >> (SIGUSR2 - 1) & 1) != 0;
}
}  // namespace

TEST_CASE("threads are named fs:TAG:N and fs:TAG:lock, none started by the activating thread",
          "[fs_device]") {
    // The activating thread (a vCPU's, in a VMM) leaves SIGUSR2 open; the factory creates
    // workers with it blocked, as a VMM's launcher would with its own mask. Every thread the
    // device has must carry the factory's mask: none may come from the activating thread.
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigset_t mine;
    REQUIRE(pthread_sigmask(SIG_UNBLOCK, &usr2, &mine) == 0);
    FsDeviceOptions options = Guest::default_options();
    options.start_thread = [&usr2](std::function<void()> body) {
        sigset_t old;
        pthread_sigmask(SIG_BLOCK, &usr2, &old);
        std::thread t(std::move(body));
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return t;
    };
    {
        Guest g(options);
        g.init();
        for (unsigned i = 0; i < options.threads; ++i) {
            const auto tids = await_tasks_named("fs:share:" + std::to_string(i), 1);
            REQUIRE(tids.size() == 1);
            CHECK(blocks_sigusr2(tids[0]));
        }
        CHECK(await_tasks_named("fs:share:lock", 0, std::chrono::milliseconds(0)).empty());
        // A blocked SETLKW starts the lock waiter, from the worker serving it.
        std::ofstream(g.dir / "l") << "x";
        const uint64_t node = g.lookup(FUSE_ROOT_ID, "l").nodeid;
        const uint64_t fh_a = g.open(node, O_RDWR);
        const uint64_t fh_b = g.open(node, O_RDWR);
        auto a = lock_request(fh_a, 1, F_WRLCK);
        REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(a)}).error() == 0);
        auto b = lock_request(fh_b, 2, F_WRLCK);
        const uint64_t waiting = g.submit(1, FUSE_SETLKW, node, {bytes_of(b)});
        const auto waiter = await_tasks_named("fs:share:lock", 1);
        REQUIRE(waiter.size() == 1);
        CHECK(blocks_sigusr2(waiter[0]));
        // The unlock wakes it (that this is the unlock's doing and not a timer's is shown in
        // lock_waiter_test, where the timer is an hour).
        auto unlock = lock_request(fh_a, 1, F_UNLCK);
        REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(unlock)}).error() == 0);
        auto granted = g.wait(1, waiting);
        REQUIRE(granted);
        CHECK(granted->error() == 0);
        g.device().reset();
        // reset() joined them all.
        for (unsigned i = 0; i < options.threads; ++i) {
            CHECK(await_tasks_named("fs:share:" + std::to_string(i), 0).empty());
        }
        CHECK(await_tasks_named("fs:share:lock", 0).empty());
    }
    pthread_sigmask(SIG_SETMASK, &mine, nullptr);
}

TEST_CASE("two request queues served concurrently, replies on their own queue", "[fs_device]") {
    FsDeviceOptions o = Guest::default_options();
    o.num_request_queues = 2;
    Guest g(o);
    g.init();
    std::ofstream(g.dir / "shared") << std::string(65536, 'z');
    const uint64_t node = g.lookup(FUSE_ROOT_ID, "shared").nodeid;
    const uint64_t fh = g.open(node, O_RDONLY);
    std::atomic<int> failures{0};
    auto worker = [&](uint16_t queue) {
        for (int round = 0; round < 20; ++round) {
            std::vector<uint64_t> ids;
            for (int i = 0; i < 32; ++i) {
                fuse_read_in read{};
                read.fh = fh;
                read.offset = i * 1024;
                read.size = 4096;
                ids.push_back(g.submit(queue, FUSE_READ, node, {bytes_of(read)}));
            }
            for (uint64_t id : ids) {
                auto reply = g.wait(queue, id);
                if (!reply || reply->error() != 0 || reply->text() != std::string(4096, 'z')) {
                    ++failures;
                }
            }
        }
    };
    std::thread q1(worker, 1), q2(worker, 2);
    q1.join();
    q2.join();
    CHECK(failures == 0);
    CHECK(g.interrupt.used[1] > 0);
    CHECK(g.interrupt.used[2] > 0);
}

TEST_CASE("a full request queue does not starve another one", "[fs_device]") {
    FsDeviceOptions o = Guest::default_options();
    o.num_request_queues = 2;
    o.threads = 1;  // one worker: the order it serves the queues in is the order of node ids
    Guest g(o, false, false);
    // The backend numbers inodes as it first looks them up, so node ids show the service order.
    constexpr int kBusy = 63;  // with INIT, every request slot of queue 1
    for (int i = 0; i <= kBusy; ++i) std::ofstream(g.dir / ("f" + std::to_string(i)));
    fuse_init_in in{7, 37, 0, 0, 0, {}};
    const uint64_t init = g.submit(1, FUSE_INIT, 0, {bytes_of(in)});
    std::vector<uint64_t> busy;
    for (int i = 1; i <= kBusy; ++i) {
        busy.push_back(g.submit(1, FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f" + std::to_string(i))}));
    }
    const uint64_t other = g.submit(2, FUSE_LOOKUP, FUSE_ROOT_ID, {cstr("f0")});
    g.activate();
    auto init_reply = g.wait(1, init);
    REQUIRE(init_reply);
    REQUIRE(init_reply->error() == 0);
    uint64_t last_busy = 0;
    for (uint64_t id : busy) {
        auto reply = g.wait(1, id);
        REQUIRE(reply);
        REQUIRE(reply->error() == 0);
        last_busy = std::max(last_busy, reply->as<fuse_entry_out>().nodeid);
    }
    auto reply = g.wait(2, other);
    REQUIRE(reply);
    REQUIRE(reply->error() == 0);
    // Served while queue 1 still had requests waiting, not after the last of them.
    CHECK(reply->as<fuse_entry_out>().nodeid < last_busy);
}

TEST_CASE("with VIRTIO_FS_F_NOTIFICATION negotiated the request queue is 2", "[fs_device]") {
    FsDeviceOptions o = Guest::default_options();
    o.notification = true;
    o.notify_buf_size = 1024;
    Guest g(o, true);
    // Queue 2 serves requests; queue 1 (notifications) is not popped for requests.
    fuse_init_in in{7, 37, 0, 0, 0, {}};
    auto reply = g.call(2, FUSE_INIT, 0, {bytes_of(in)});
    CHECK(reply.error() == 0);
    const uint64_t unique = g.submit(1, FUSE_GETATTR, FUSE_ROOT_ID, {Bytes(16)});
    CHECK(!g.wait(1, unique, std::chrono::milliseconds(50)));
}

TEST_CASE("a broken ring asks for a reset and the device goes on", "[fs_device]") {
    Guest g;
    g.init();
    // A head index beyond the descriptor table.
    g.client(1).driver().publish_raw_head(1000);
    g.device().queue_notified(1, 0);
    for (int i = 0; i < 500 && g.interrupt.resets == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK(g.interrupt.resets == 1);
    {
        std::lock_guard lock(g.interrupt.mutex);
        CHECK(g.interrupt.reason == "queue 1: descriptor index beyond the table");
    }
    // hiprio still works.
    fuse_forget_in forget{1};
    CHECK(g.call(0, FUSE_FORGET, 12345, {bytes_of(forget)}).header.len == 0);
}

TEST_CASE("describe(): each served ring and the requests the server holds", "[fs_device]") {
    Guest g(Guest::default_options(), false, false);
    CHECK(g.device().describe() == std::vector<std::string>{"virtio-fs: not active"});
    g.activate();
    g.init();
    std::ofstream(g.dir / "l") << "x";
    const uint64_t node = g.lookup(FUSE_ROOT_ID, "l").nodeid;
    auto a = lock_request(g.open(node, O_RDWR), 1, F_WRLCK);
    REQUIRE(g.call(FUSE_SETLK, node, {bytes_of(a)}).error() == 0);
    auto b = lock_request(g.open(node, O_RDWR), 2, F_WRLCK);
    const uint64_t waiting = g.submit(1, FUSE_SETLKW, node, {bytes_of(b)});
    CHECK(!g.wait(1, waiting, std::chrono::milliseconds(100)));

    const std::vector<std::string> lines = g.device().describe();
    REQUIRE(lines.size() == 2);  // hiprio and the request queue
    CHECK_THAT(lines[0], Catch::StartsWith("queue 0: split ring of 128: avail idx 0") &&
                             Catch::EndsWith("; 0 requests in the FUSE server"));
    // INIT, LOOKUP, two OPENs, SETLK and the waiting SETLKW.
    CHECK_THAT(lines[1],
               Catch::StartsWith("queue 1: split ring of 128: avail idx 6 (0 not popped), "
                                 "6 popped, used idx 5 (1 in flight)") &&
                   Catch::EndsWith("; 1 requests in the FUSE server"));
}
