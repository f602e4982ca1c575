// SPDX-License-Identifier: Apache-2.0
// FuseClient: the guest side of FUSE for tests, written from <linux/fuse.h>: builds request
// bytes, parses replies, and drives them through a virtio-fs device over split rings.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "split/split_driver.hpp"
#include "test_memory.hpp"

namespace vfsdax::test {

using Bytes = std::vector<std::byte>;

template <typename T>
Bytes bytes_of(const T& value) {
    Bytes out(sizeof(T));
    std::memcpy(out.data(), &value, sizeof(T));
    return out;
}
// A name as FUSE sends it: the bytes, then a NUL.
Bytes cstr(std::string_view s);
Bytes raw_bytes(std::string_view s);

// Who sends requests: fills fuse_in_header.
struct Caller {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t pid = 1;
};

// Builds one request: fuse_in_header with len computed, then the argument blocks in order.
Bytes fuse_request(uint32_t opcode, uint64_t unique, uint64_t nodeid,
                   std::initializer_list<Bytes> args, Caller caller = {});

// Overwrites fuse_in_header.len of a built request, to forge inconsistent framing.
void set_request_len(Bytes& request, uint32_t len);

// A reply as the guest sees it. Parsing checks what Linux checks (fuse_dev_do_write and
// virtio_fs_requests_done_work): out.len equals the bytes the device reported, unique matches.
struct FuseReply {
    fuse_out_header header{};
    Bytes payload;

    int error() const { return -header.error; }
    template <typename T>
    T as() const {
        T value{};
        std::memcpy(&value, payload.data(), std::min(payload.size(), sizeof(T)));
        return value;
    }
    std::string text() const {
        return std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
    }
};
// Throws std::runtime_error when the bytes are not a well-formed reply.
FuseReply parse_reply(std::span<const std::byte> written, uint64_t unique);

struct Dirent {
    uint64_t ino = 0;
    uint64_t off = 0;
    uint32_t type = 0;
    std::string name;
    std::optional<fuse_entry_out> entry;  // READDIRPLUS only
};
// Walks fuse_dirent / fuse_direntplus records as fs/fuse/readdir.c does; throws on a record
// that overruns the payload.
std::vector<Dirent> parse_dirents(const Bytes& payload, bool plus);

// A FUSE session over one split virtqueue of a virtio-fs device: each request gets a guest
// buffer for its bytes and one for the reply, recycled when the reply arrives.
class FuseQueueClient {
public:
    // `slots` requests may be in flight, each reply up to `reply_capacity` bytes, each
    // request up to `request_capacity` bytes.
    FuseQueueClient(TestMemory& memory, uint16_t queue_size, uint64_t features, uint16_t slots,
                    uint32_t request_capacity, uint32_t reply_capacity);

    SplitDriver& driver() { return driver_; }
    // Queues a request (not yet visible to the device); returns its head. reply_size 0 means
    // the full reply capacity; a writable part is always offered (the device needs room
    // for the header even when the reply is discarded).
    uint16_t add(const Bytes& request, uint32_t reply_size = 0);
    // publish() + whether to kick.
    bool publish();
    // A used element: its head and the reply bytes as written, read in place in guest memory
    // (as a guest driver would), valid until the next add().
    struct Completion {
        uint16_t head = 0;
        std::span<const std::byte> written;
    };
    std::optional<Completion> poll();
    std::size_t in_flight() const { return in_flight_; }

private:
    struct Slot {
        DriverBuffer request, reply;
        uint32_t reply_size = 0;
    };
    SplitDriver driver_;
    TestMemory& memory_;
    std::vector<Slot> slots_;
    std::vector<uint16_t> free_slots_;
    std::vector<int> slot_of_head_;
    std::size_t in_flight_ = 0;
};

}  // namespace vfsdax::test
