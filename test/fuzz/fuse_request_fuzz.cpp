// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the FUSE request parser: random messages in chains of random shape
// (tiny segments, empty descriptors anywhere), with random reply room, served by a FuseServer
// over the passthrough backend on a scratch dir.
#include <linux/fuse.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuse/buffer_request.hpp"
#include "vfsdax/fs/fuse_server.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;

namespace {

// Accepts every mapping: the window's own checks are the mapper's business; here only the
// server's parsing and bounds matter.
class NullMapper final : public fs::Mapper {
public:
    uint64_t window_size() const override { return 64 << 20; }
    uint32_t map_alignment() const override { return 12; }
    std::expected<void, int> map(uint64_t, std::span<const fs::FileExtent>, bool,
                                 uint64_t) override {
        return {};
    }
    std::expected<void, int> unmap(uint64_t, uint64_t) override { return {}; }
    std::expected<void, int> follow_file_size(uint64_t) override { return {}; }
    std::expected<void, int> sync(uint64_t) override { return {}; }
    std::expected<void, int> sync_all() override { return {}; }
    std::expected<void, int> reset() override { return {}; }
};

// Checks what the server wrote back.
class FuzzRequest final : public test::BufferRequest {
public:
    FuzzRequest(const uint8_t* data, std::size_t size, std::size_t segment, std::size_t reply)
        : BufferRequest({reinterpret_cast<const std::byte*>(data), size}, reply, segment) {}
    FuzzRequest(const std::vector<uint8_t>& message, std::span<const std::size_t> readable,
                std::span<const std::size_t> writable)
        : BufferRequest({reinterpret_cast<const std::byte*>(message.data()), message.size()},
                        readable, writable) {}
    void complete(uint32_t written) override {
        // The reply must fit what the chain offered and carry a consistent header.
        if (written > reply().size()) abort();
        if (written != 0) {
            fuse_out_header out;
            if (written < sizeof(out)) abort();
            std::memcpy(&out, reply().data(), sizeof(out));
            if (out.len != written || out.error > 0) abort();
        }
    }
};

struct Session {
    Session() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "vfsdax-fuzz-XXXXXX").string();
        if (!mkdtemp(pattern.data())) abort();
        root = pattern;
        std::filesystem::create_directory(root / "dir");
        FILE* f = fopen((root / "file").c_str(), "w");
        if (!f) abort();
        fputs("some file content", f);
        fclose(f);
        backend = fs::make_passthrough({.root = root.string()}).value();
        fs::FuseOptions options;
        options.xattr = true;
        options.max_write = 1 << 16;
        server = std::make_unique<fs::FuseServer>(*backend, options, &mapper);
    }
    ~Session() {
        server.reset();
        backend.reset();
        std::error_code ignored;
        std::filesystem::remove_all(root, ignored);
    }
    void init() {
        fuse_in_header in{};
        fuse_init_in init{};
        in.len = sizeof(in) + sizeof(init);
        in.opcode = FUSE_INIT;
        in.unique = 1;
        init.major = FUSE_KERNEL_VERSION;
        init.minor = FUSE_KERNEL_MINOR_VERSION;
        init.flags = 0xffffffff;
        uint8_t bytes[sizeof(in) + sizeof(init)];
        std::memcpy(bytes, &in, sizeof(in));
        std::memcpy(bytes + sizeof(in), &init, sizeof(init));
        server->handle(std::make_unique<FuzzRequest>(bytes, sizeof(bytes), sizeof(bytes), 256));
    }

    std::filesystem::path root;
    NullMapper mapper;
    std::unique_ptr<fs::FileSystem> backend;
    std::unique_ptr<fs::FuseServer> server;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    static Session session;
    if (size < 6) return 0;
    // Control bytes:
    //   [0..1] reply room (bytes of writable descriptors, below 32 KiB)
    //   [2]    readable segment size (0: one segment for the whole message)
    //   [3]    bit 0: make in.len consistent (so most inputs get past framing into the opcode
    //          handlers); bit 1: an empty descriptor after each readable segment; bit 2: one
    //          after each writable segment
    //   [4]    empty writable descriptors before the first byte of reply room
    //   [5]    writable segment size (0: one segment for the whole room)
    // Empty descriptors and one-byte segments are what a DescriptorChain can hold and the
    // queue engines can hand over, so the server must take them anywhere.
    const std::size_t reply = (std::size_t{data[0]} << 8 | data[1]) % (1 << 15);
    const std::size_t segment = data[2] ? data[2] : SIZE_MAX;
    const bool fix_len = data[3] & 1;
    const bool empty_after_readable = data[3] & 2;
    const bool empty_after_writable = data[3] & 4;
    const std::size_t leading_empty = data[4];
    const std::size_t reply_segment = data[5] ? data[5] : SIZE_MAX;
    data += 6;
    size -= 6;
    if (size == 0) return 0;
    std::vector<uint8_t> message(data, data + size);
    if (fix_len && size >= sizeof(fuse_in_header)) {
        const uint32_t len = static_cast<uint32_t>(size);
        std::memcpy(message.data(), &len, sizeof(len));
    }
    std::vector<std::size_t> readable;
    for (std::size_t at = 0; at < size; at += segment) {
        readable.push_back(std::min(segment, size - at));
        if (empty_after_readable) readable.push_back(0);
    }
    std::vector<std::size_t> writable(leading_empty, 0);
    for (std::size_t at = 0; at < reply; at += reply_segment) {
        writable.push_back(std::min(reply_segment, reply - at));
        if (empty_after_writable) writable.push_back(0);
    }
    // A session whatever the previous input did (DESTROY ends one; a second INIT is refused).
    session.init();
    session.server->handle(std::make_unique<FuzzRequest>(message, readable, writable));
    return 0;
}
