// SPDX-License-Identifier: Apache-2.0
// DescriptorChain cursors: copies and zero-copy iovec views over guest segments.
#include "vfsdax/virtio/descriptor_chain.hpp"

#include <cstring>

namespace vfsdax::virtio {

void DescriptorChain::add_overflow(Segment segment) {
    if (count_ == kInlineSegments) overflow_.assign(inline_, inline_ + kInlineSegments);
    overflow_.push_back(segment);
}

std::size_t SegmentCursor::peek_iovecs(uint64_t max_bytes, std::vector<iovec>& out) const {
    std::size_t total = 0;
    std::size_t offset = offset_;
    for (std::size_t i = index_; i < segments_.size() && total < max_bytes; ++i) {
        const std::size_t chunk =
            std::min<uint64_t>(segments_[i].size() - offset, max_bytes - total);
        // Zero-length segments carry nothing: leaving them out bounds the iovecs by the bytes,
        // whatever number of empty descriptors the guest put in the chain.
        if (chunk != 0) {
            out.push_back(iovec{segments_[i].data() + offset, chunk});
            total += chunk;
        }
        offset = 0;
    }
    return total;
}

void SegmentCursor::advance(uint64_t n) {
    n = std::min(n, remaining_);
    while (n > 0) {
        const std::size_t chunk = std::min<uint64_t>(n, segments_[index_].size() - offset_);
        step(chunk);
        n -= chunk;
    }
}

std::expected<void, ChainError> ChainReader::read(void* buffer, std::size_t n) {
    if (n > remaining()) return std::unexpected(ChainError::ShortRead);
    auto* out = static_cast<std::byte*>(buffer);
    transfer(n, [out](std::byte* guest, std::size_t at, std::size_t len) {
        std::memcpy(out + at, guest, len);
    });
    return {};
}

std::expected<void, ChainError> ChainReader::skip(std::size_t n) {
    if (n > remaining()) return std::unexpected(ChainError::ShortRead);
    advance(n);
    return {};
}

std::expected<void, ChainError> ChainWriter::write(const void* buffer, std::size_t n) {
    if (n > remaining()) return std::unexpected(ChainError::ShortWrite);
    const auto* in = static_cast<const std::byte*>(buffer);
    transfer(n, [in](std::byte* guest, std::size_t at, std::size_t len) {
        std::memcpy(guest, in + at, len);
    });
    return {};
}

}  // namespace vfsdax::virtio
