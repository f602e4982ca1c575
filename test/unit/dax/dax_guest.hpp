// SPDX-License-Identifier: Apache-2.0
// DaxGuest: an FsDevice with a DaxMapper, driven the way the Linux guest drives it (split-ring
// driver model + FUSE client), plus the patterned files the dax tests check on the host.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "dax_fixtures.hpp"
#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/dax_mapper.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "vfsdax/fs/passthrough.hpp"

namespace dax_test {

using namespace vfsdax;
using namespace vfsdax::test;
using fs::DaxMapper;
using fs::FsDevice;
using fs::FsDeviceOptions;
using fs::InodeDax;

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
inline unsigned char wire_pattern(uint64_t offset) {
    return static_cast<unsigned char>(offset * 7 + offset / 4096);
}

inline std::vector<unsigned char> pattern_bytes(uint64_t offset, uint64_t length) {
    std::vector<unsigned char> out(length);
    for (uint64_t i = 0; i < length; ++i) out[i] = wire_pattern(offset + i);
    return out;
}

inline void write_file(const std::filesystem::path& path, uint64_t size) {
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    REQUIRE(fd >= 0);
    const auto data = pattern_bytes(0, size);
    REQUIRE(pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(size));
    ::close(fd);
}

inline std::vector<unsigned char> read_file(const std::filesystem::path& path, uint64_t offset,
                                            uint64_t length) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    std::vector<unsigned char> out(length);
    const ssize_t n = pread(fd, out.data(), length, static_cast<off_t>(offset));
    ::close(fd);
    REQUIRE(n == static_cast<ssize_t>(length));
    return out;
}

inline std::vector<unsigned char> host_bytes(const std::byte* at, uint64_t length) {
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

}  // namespace dax_test
