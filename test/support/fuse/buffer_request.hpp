// SPDX-License-Identifier: Apache-2.0
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
    // Any chain shape a DescriptorChain can hold: readable segments of the sizes in `readable`
    // (the request bytes not covered go in one more segment), then writable ones of the sizes
    // in `writable`, which together make the reply buffer. A size 0 is an empty descriptor:
    // the queue engines accept those, so the server must take them anywhere.
    BufferRequest(std::span<const std::byte> request, std::span<const std::size_t> readable,
                  std::span<const std::size_t> writable)
        : request_(request.begin(), request.end()) {
        std::size_t reply_size = 0;
        for (std::size_t n : writable) reply_size += n;
        reply_.resize(reply_size);
        std::size_t at = 0;
        for (std::size_t n : readable) {
            n = std::min(n, request_.size() - at);
            (void)chain_.add({request_.data() + at, n}, false);
            at += n;
        }
        if (at < request_.size())
            (void)chain_.add({request_.data() + at, request_.size() - at}, false);
        at = 0;
        for (std::size_t n : writable) {
            (void)chain_.add({reply_.data() + at, n}, true);
            at += n;
        }
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
