// SPDX-License-Identifier: Apache-2.0
// SharedMemoryRegion: real mmaps of file ranges into a reserved range, sync, discard, bounds.
#include "vfsdax/memory/shared_memory_region.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "dax_fixtures.hpp"

using namespace dax_test;
using vfsdax::SharedMemoryRegion;

namespace {

SharedMemoryRegion reserve(uint64_t size) {
    auto region = SharedMemoryRegion::reserve(size);
    REQUIRE(region);
    return std::move(*region);
}

}  // namespace

TEST_CASE("reserve wants a nonzero page multiple and gives zeroed, 2 MiB aligned memory") {
    CHECK(error_of(SharedMemoryRegion::reserve(0)) == EINVAL);
    CHECK(error_of(SharedMemoryRegion::reserve(P + 1)) == EINVAL);
    CHECK(error_of(SharedMemoryRegion::reserve(~uint64_t{0} - P + 1)) == EINVAL);
    auto region = reserve(64 * P);
    CHECK(region.size() == 64 * P);
    CHECK(reinterpret_cast<uintptr_t>(region.host()) % (2 << 20) == 0);
    CHECK(all_zero(region.host(), region.size()));
    region.host()[5] = std::byte{7};
    CHECK(region.host()[5] == std::byte{7});
}

TEST_CASE("a mapped file range reads through the region, and outlives its fd") {
    TempFile file(8);
    auto region = reserve(16 * P);
    REQUIRE(region.map(4 * P, 3 * P, file.fd(), 2 * P, false));
    file.close_now();
    CHECK(matches_file(region.host() + 4 * P, 2 * P, 3 * P));
    CHECK(all_zero(region.host(), 4 * P));
    CHECK(all_zero(region.host() + 7 * P, 9 * P));
}

TEST_CASE("writes through a writable mapping reach the file after sync") {
    TempFile file(4);
    auto region = reserve(16 * P);
    REQUIRE(region.map(0, 4 * P, file.fd(), 0, true));
    region.host()[P + 10] = std::byte{0xab};
    REQUIRE(dirty_kib(region.host()) > 0);
    REQUIRE(region.sync(0, 4 * P));
    CHECK(dirty_kib(region.host()) == 0);
    unsigned char byte = 0;
    REQUIRE(pread(file.fd(), &byte, 1, P + 10) == 1);
    CHECK(byte == 0xab);
}

TEST_CASE("a read-only mapping refuses writes") {
    TempFile file(1);
    auto region = reserve(4 * P);
    REQUIRE(region.map(0, P, file.fd(), 0, false));
    CHECK_FALSE(kernel_can_write(region.host()));
    CHECK(kernel_can_write(region.host() + P));
}

TEST_CASE("discard leaves zeros, keeps the file and the range, spares the neighbours") {
    TempFile file(8);
    auto region = reserve(16 * P);
    REQUIRE(region.map(0, 8 * P, file.fd(), 0, true));
    REQUIRE(region.discard(2 * P, 3 * P));
    CHECK(all_zero(region.host() + 2 * P, 3 * P));
    CHECK(matches_file(region.host(), 0, 2 * P));
    CHECK(matches_file(region.host() + 5 * P, 5 * P, 3 * P));
    // Still reserved, and writes there are private to the region.
    CHECK(kernel_can_write(region.host() + 3 * P));
    std::vector<unsigned char> page(P);
    REQUIRE(pread(file.fd(), page.data(), P, 3 * P) == static_cast<ssize_t>(P));
    CHECK(matches_file(reinterpret_cast<std::byte*>(page.data()), 3 * P, P));
}

TEST_CASE("region operations check alignment and bounds without overflow") {
    TempFile file(1);
    auto region = reserve(8 * P);
    const uint64_t top = ~uint64_t{0} - P + 1;
    CHECK(error_of(region.map(8 * P, P, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(7 * P, 2 * P, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(top, 2 * P, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(P, top, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(1, P, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(0, P, file.fd(), 1, false)) == EINVAL);
    CHECK(error_of(region.map(0, 0, file.fd(), 0, false)) == EINVAL);
    CHECK(error_of(region.map(0, P, file.fd(), top, false)) == EINVAL);
    CHECK(error_of(region.discard(top, 2 * P)) == EINVAL);
    CHECK(error_of(region.discard(0, 9 * P)) == EINVAL);
    CHECK(error_of(region.sync(P, top)) == EINVAL);
    CHECK(error_of(region.sync(0, P / 2)) == EINVAL);
}

TEST_CASE("a refused map leaves the range reserved and zeroed") {
    TempFile file(2);
    auto region = reserve(4 * P);
    REQUIRE(region.map(0, 2 * P, file.fd(), 0, false));
    const int write_only = open("/dev/null", O_WRONLY);
    REQUIRE(write_only >= 0);
    CHECK(error_of(region.map(0, 2 * P, -1, 0, false)) == EBADF);
    CHECK(error_of(region.map(0, 2 * P, write_only, 0, false)) == EACCES);
    close(write_only);
    CHECK(all_zero(region.host(), 2 * P));
    CHECK(kernel_can_write(region.host()));
}

TEST_CASE("a moved region keeps its mappings; the moved-from one owns nothing") {
    TempFile file(1);
    auto first = reserve(4 * P);
    REQUIRE(first.map(0, P, file.fd(), 0, false));
    std::byte* host = first.host();
    SharedMemoryRegion second = std::move(first);
    CHECK(second.host() == host);
    CHECK(first.host() == nullptr);
    CHECK(error_of(first.map(0, P, file.fd(), 0, false)) == EINVAL);
    CHECK(matches_file(second.host(), 0, P));
}
