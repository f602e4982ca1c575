// SPDX-License-Identifier: Apache-2.0
// DescriptorChain: one buffer popped from a virtqueue, with its reader and writer cursors.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <type_traits>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/virtio/queue_error.hpp"

namespace vfsdax::virtio {

using Segment = std::span<std::byte>;

// The host view of one driver buffer: device-readable segments, then device-writable ones.
// Both layouts produce this; the queue that popped it records in `token` how to return it.
// Reusable: pop() clears it, keeping the segment storage, so steady state allocates nothing.
//
// The first kInlineSegments segments live in the object itself: most requests have a few
// descriptors, and add() then is a store and an increment (no vector growth check, no heap).
// A longer chain moves its segments to `overflow_` once and stays there until clear().
class VFSDAX_EXPORT DescriptorChain {
public:
    static constexpr std::size_t kInlineSegments = 8;

    // Queue-private: split head index or packed buffer id, and ring slots the chain used.
    struct Token {
        uint16_t id = 0;
        uint16_t ring_slots = 0;
    };

    std::span<const Segment> readable() const { return {data(), readable_count_}; }
    std::span<const Segment> writable() const {
        return {data() + readable_count_, count_ - readable_count_};
    }
    // Sums of 32-bit lengths over at most 2^16 descriptors: exact in 64 bits.
    uint64_t readable_bytes() const { return readable_bytes_; }
    uint64_t writable_bytes() const { return writable_bytes_; }

    Token token() const { return token_; }

    // For queue engines.
    void clear(Token token) {
        count_ = 0;
        readable_count_ = 0;
        readable_bytes_ = writable_bytes_ = 0;
        token_ = token;
    }
    void set_token(Token token) { token_ = token; }
    void set_token_id(uint16_t id) { token_.id = id; }
    void set_token_slots(uint16_t ring_slots) { token_.ring_slots = ring_slots; }
    // Segments added since clear().
    std::size_t size() const { return count_; }
    // A queue's fast path builds a short chain of direct descriptors in place: it stores
    // segments 0..count-1 in inline_segments() (count <= kInlineSegments; readable ones first,
    // as add() enforces), says where the readable ones end with set_inline_readable(), then
    // sets the rest with finish_inline() and the token. Such a chain takes one ring slot per
    // descriptor, on either layout.
    Segment* inline_segments() { return inline_; }
    void set_inline_readable(std::size_t readable_count, uint64_t readable_bytes) {
        readable_count_ = readable_count;
        readable_bytes_ = readable_bytes;
    }
    void finish_inline(uint16_t count, uint64_t writable_bytes) {
        count_ = count;
        writable_bytes_ = writable_bytes;
    }
    std::expected<void, QueueError> add(Segment segment, bool device_writable) {
        if (device_writable) {
            writable_bytes_ += segment.size();
        } else {
            if (count_ != readable_count_) [[unlikely]] {
                return std::unexpected(QueueError::ReadableAfterWritable);
            }
            ++readable_count_;
            readable_bytes_ += segment.size();
        }
        if (count_ < kInlineSegments) [[likely]] {
            inline_[count_] = segment;
        } else {
            add_overflow(segment);
        }
        ++count_;
        return {};
    }

private:
    const Segment* data() const { return count_ <= kInlineSegments ? inline_ : overflow_.data(); }
    // Appends segment number count_ (>= kInlineSegments) to overflow_, first moving the inline
    // ones there when this is the first beyond them.
    [[gnu::noinline]] void add_overflow(Segment segment);

    Segment inline_[kInlineSegments];
    std::vector<Segment> overflow_;  // segments 0..count_ when count_ > kInlineSegments
    std::size_t count_ = 0;
    std::size_t readable_count_ = 0;
    uint64_t readable_bytes_ = 0;
    uint64_t writable_bytes_ = 0;
    Token token_;
};

// A cursor over a list of segments; the shared part of ChainReader and ChainWriter.
class VFSDAX_EXPORT SegmentCursor {
public:
    explicit SegmentCursor(std::span<const Segment> segments, uint64_t total)
        : segments_(segments), remaining_(total) {}

    uint64_t remaining() const { return remaining_; }
    uint64_t consumed() const { return consumed_; }

    // Up to `max_bytes` from the cursor as iovecs (appended to `out`), without advancing:
    // zero-copy I/O (preadv/pwritev) goes straight into guest memory, then calls advance().
    // Zero-length segments are skipped, so at most `max_bytes` iovecs are appended.
    std::size_t peek_iovecs(uint64_t max_bytes, std::vector<iovec>& out) const;
    // Moves the cursor by n <= remaining() bytes.
    void advance(uint64_t n);

protected:
    // Copies between the cursor and `buffer`; the caller checked n <= remaining().
    template <typename Copy>
    void transfer(std::size_t n, Copy&& copy) {
        std::size_t done = 0;
        while (done < n) {
            const Segment& s = segments_[index_];
            const std::size_t chunk = std::min(n - done, s.size() - offset_);
            copy(s.data() + offset_, done, chunk);
            done += chunk;
            step(chunk);
        }
    }

private:
    void step(std::size_t n) {
        offset_ += n;
        remaining_ -= n;
        consumed_ += n;
        if (offset_ == segments_[index_].size()) {
            ++index_;
            offset_ = 0;
        }
    }

    std::span<const Segment> segments_;
    std::size_t index_ = 0;
    std::size_t offset_ = 0;
    uint64_t remaining_;
    uint64_t consumed_ = 0;
};

enum class ChainError {
    ShortRead,   // the readable part holds fewer bytes than asked for
    ShortWrite,  // the writable part has less room than asked for
};

// Reads the device-readable part of a chain in order. Reads are all-or-nothing.
class VFSDAX_EXPORT ChainReader : public SegmentCursor {
public:
    explicit ChainReader(const DescriptorChain& chain)
        : SegmentCursor(chain.readable(), chain.readable_bytes()) {}

    std::expected<void, ChainError> read(void* buffer, std::size_t n);
    template <typename T>
    std::expected<T, ChainError> read_object() {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (auto r = read(&value, sizeof(T)); !r) return std::unexpected(r.error());
        return value;
    }
    std::expected<void, ChainError> skip(std::size_t n);
};

// Writes the device-writable part of a chain in order. Writes are all-or-nothing.
class VFSDAX_EXPORT ChainWriter : public SegmentCursor {
public:
    explicit ChainWriter(const DescriptorChain& chain)
        : SegmentCursor(chain.writable(), chain.writable_bytes()) {}

    std::expected<void, ChainError> write(const void* buffer, std::size_t n);
    template <typename T>
    std::expected<void, ChainError> write_object(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(&value, sizeof(T));
    }
    // Bytes written so far: the `written` length to push back with the chain.
    uint64_t bytes_written() const { return consumed(); }
};

}  // namespace vfsdax::virtio
