// SPDX-License-Identifier: Apache-2.0
// Request parsing and reply writing for the FUSE server: every guest length checked here.
#pragma once

#include <linux/fuse.h>

#include <cerrno>
#include <cstdint>
#include <string_view>
#include <vector>

#include "vfsdax/fs/file_system.hpp"
#include "vfsdax/virtio/descriptor_chain.hpp"

namespace vfsdax::fs::fuse {

// The body of one request: the bytes after fuse_in_header, bounded by in_header.len (itself
// checked against the chain), so no op can read into the next request or past the chain.
class RequestBody {
public:
    RequestBody(virtio::ChainReader& reader, uint64_t length) : reader_(reader), left_(length) {}

    uint64_t left() const { return left_; }
    virtio::ChainReader& reader() { return reader_; }

    // An op's fixed part; EINVAL when the request is shorter.
    template <typename T>
    Result<T> take() {
        T value{};
        if (auto r = take_bytes(&value, sizeof(T)); !r) return std::unexpected(r.error());
        return value;
    }
    Result<void> take_bytes(void* out, std::size_t n);
    // Consumes n bytes the caller handled itself (a write payload read via iovecs).
    void consumed(uint64_t n);
    // The rest of the body (at most `max` bytes, else E2BIG) copied into `out`, for names.
    Result<void> take_rest(std::vector<char>& out, std::size_t max);

private:
    virtio::ChainReader& reader_;
    uint64_t left_;
};

// Splits a copied body tail into NUL-terminated strings.
class StringList {
public:
    explicit StringList(const std::vector<char>& data) : data_(data.data(), data.size()) {}
    // A string of 1..max_len bytes ended by a NUL inside the body; EINVAL otherwise.
    Result<std::string_view> next(std::size_t max_len);
    // A path component: also no '/'; ENAMETOOLONG past NAME_MAX.
    Result<std::string_view> next_name();

private:
    std::string_view data_;
};

// The reply: claims room for fuse_out_header first, so the payload can be written straight
// into guest memory (zero-copy reads) and the header filled in once its length is known.
// The header's place is kept as a copy of the writer's cursor, not as a list of the segments
// it spans: a chain may spread those 16 bytes over any number of segments (zero-length ones
// included), and a cursor walks them all without a bound of its own.
class ReplyWriter {
public:
    ReplyWriter(virtio::ChainWriter& writer, uint64_t unique);

    // False when the chain cannot hold even a header: the request then gets no reply.
    bool has_header() const { return has_header_; }
    virtio::ChainWriter& payload() { return writer_; }
    // Payload room left after the header.
    uint64_t room() const { return has_header_ ? writer_.remaining() : 0; }

    // Writes the header; returns the reply length to push (0 without header room).
    // An error reply carries no payload, whatever was written before.
    uint32_t finish(int error);
    uint32_t error(int error) { return finish(error); }
    template <typename T>
    uint32_t reply(const T& value) {
        if (!has_header_) return 0;
        if (!writer_.write_object(value)) return finish(EINVAL);
        return finish(0);
    }

private:
    virtio::ChainWriter& writer_;
    const virtio::ChainWriter header_at_;  // the writer as it stood before the header
    uint64_t unique_;
    uint64_t start_;  // where the header begins in the writable part
    bool has_header_ = false;
};

fuse_attr to_fuse_attr(const Attr& attr);

}  // namespace vfsdax::fs::fuse
