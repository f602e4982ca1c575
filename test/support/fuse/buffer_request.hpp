// BufferRequest: a FUSE request over buffers the test owns, for the server tests and the fuzzer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "vfsdax/fs/fuse_server.hpp"

namespace vfsdax::test {

// The request bytes split into segments of `segment` bytes (hostile guests split anywhere),
// then one writable buffer of `reply_capacity` bytes (none when 0). Owns its buffers: a parked
// SETLKW completes after the caller's input is gone. Header-only: the fuzz build links no
// test support library.
class BufferRequest : public fs::FuseRequest {
public:
    BufferRequest(std::span<const std::byte> request, std::size_t reply_capacity,
                  std::size_t segment)
        : request_(request.begin(), request.end()), reply_(reply_capacity) {
        for (std::size_t at = 0; at < request_.size(); at += segment) {
            const std::size_t n = std::min(segment, request_.size() - at);
            (void)chain_.add({request_.data() + at, n}, false);
        }
        if (!reply_.empty()) (void)chain_.add({reply_.data(), reply_.size()}, true);
        reader_.emplace(chain_);
        writer_.emplace(chain_);
    }
    virtio::ChainReader& reader() override { return *reader_; }
    virtio::ChainWriter& writer() override { return *writer_; }

protected:
    // The whole writable buffer; complete() says how much of it the server wrote.
    std::span<const std::byte> reply() const { return reply_; }

private:
    std::vector<std::byte> request_;
    std::vector<std::byte> reply_;
    virtio::DescriptorChain chain_;
    std::optional<virtio::ChainReader> reader_;
    std::optional<virtio::ChainWriter> writer_;
};

}  // namespace vfsdax::test
