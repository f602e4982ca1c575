// SPDX-License-Identifier: Apache-2.0
// DescriptorChain: segment order rule, byte totals, and the reader/writer cursors.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <vector>

#include "vfsdax/virtio/descriptor_chain.hpp"

using namespace vfsdax::virtio;

namespace {
Segment seg(std::byte* p, std::size_t n) { return Segment(p, n); }
}  // namespace

TEST_CASE("readable segments must come before writable ones") {
    std::array<std::byte, 64> buf{};
    DescriptorChain chain;
    chain.clear({7, 3});
    REQUIRE(chain.add(seg(buf.data(), 8), false));
    REQUIRE(chain.add(seg(buf.data() + 8, 8), true));
    CHECK(chain.add(seg(buf.data() + 16, 8), false).error() == QueueError::ReadableAfterWritable);
    CHECK(chain.readable().size() == 1);
    CHECK(chain.writable().size() == 1);
    CHECK(chain.readable_bytes() == 8);
    CHECK(chain.writable_bytes() == 8);
    CHECK(chain.token().id == 7);
    CHECK(chain.token().ring_slots == 3);
}

TEST_CASE("reader reads across segments, all or nothing") {
    std::array<std::byte, 16> a{}, b{};
    for (int i = 0; i < 16; ++i) {
        a[i] = std::byte(i);
        b[i] = std::byte(16 + i);
    }
    DescriptorChain chain;
    chain.clear({});
    REQUIRE(chain.add(seg(a.data(), 3), false));
    REQUIRE(chain.add(seg(b.data(), 16), false));
    ChainReader reader(chain);
    CHECK(reader.remaining() == 19);
    auto v = reader.read_object<uint32_t>();
    REQUIRE(v);
    CHECK(*v == (0x00u | 0x01u << 8 | 0x02u << 16 | 0x10u << 24));
    std::array<std::byte, 32> out{};
    CHECK(reader.read(out.data(), 16).error() == ChainError::ShortRead);
    CHECK(reader.remaining() == 15);
    REQUIRE(reader.skip(5));
    REQUIRE(reader.read(out.data(), 10));
    CHECK(out[0] == std::byte(22));
    CHECK(reader.remaining() == 0);
    CHECK(reader.read(out.data(), 1).error() == ChainError::ShortRead);
}

TEST_CASE("writer fills writable segments and counts bytes; iovecs peek without moving") {
    std::array<std::byte, 4> r{};
    std::array<std::byte, 5> w1{};
    std::array<std::byte, 7> w2{};
    DescriptorChain chain;
    chain.clear({});
    REQUIRE(chain.add(seg(r.data(), r.size()), false));
    REQUIRE(chain.add(seg(w1.data(), w1.size()), true));
    REQUIRE(chain.add(seg(w2.data(), w2.size()), true));
    ChainWriter writer(chain);
    const char msg[] = "abcdefgh";
    REQUIRE(writer.write(msg, 8));
    CHECK(std::memcmp(w1.data(), "abcde", 5) == 0);
    CHECK(std::memcmp(w2.data(), "fgh", 3) == 0);
    CHECK(writer.bytes_written() == 8);
    std::vector<iovec> iov;
    CHECK(writer.peek_iovecs(100, iov) == 4);
    REQUIRE(iov.size() == 1);
    CHECK(iov[0].iov_base == w2.data() + 3);
    CHECK(writer.write(msg, 5).error() == ChainError::ShortWrite);
    writer.advance(4);
    CHECK(writer.remaining() == 0);
    CHECK(writer.bytes_written() == 12);
}

TEST_CASE("zero-length segments: cursors step over them and iovec views leave them out") {
    // A guest may put any number of empty descriptors anywhere in a chain; the queue engines
    // accept them, so every walk over segments must too, without one iovec per empty one.
    std::array<std::byte, 6> data{};
    DescriptorChain chain;
    chain.clear({});
    for (int i = 0; i < 40; ++i) REQUIRE(chain.add(seg(data.data(), 0), true));
    REQUIRE(chain.add(seg(data.data(), 3), true));
    for (int i = 0; i < 40; ++i) REQUIRE(chain.add(seg(data.data() + 3, 0), true));
    REQUIRE(chain.add(seg(data.data() + 3, 3), true));
    REQUIRE(chain.add(seg(data.data() + 6, 0), true));
    ChainWriter writer(chain);
    std::vector<iovec> iov;
    CHECK(writer.peek_iovecs(100, iov) == 6);
    REQUIRE(iov.size() == 2);
    CHECK(iov[0].iov_base == data.data());
    CHECK(iov[0].iov_len == 3);
    CHECK(iov[1].iov_base == data.data() + 3);
    CHECK(iov[1].iov_len == 3);
    REQUIRE(writer.write("abcd", 4));
    iov.clear();
    CHECK(writer.peek_iovecs(100, iov) == 2);
    REQUIRE(iov.size() == 1);
    CHECK(iov[0].iov_base == data.data() + 4);
    REQUIRE(writer.write("ef", 2));
    CHECK(std::memcmp(data.data(), "abcdef", 6) == 0);
    CHECK(writer.remaining() == 0);
}
