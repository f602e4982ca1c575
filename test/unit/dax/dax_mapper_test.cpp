// SPDX-License-Identifier: Apache-2.0
// DaxMapper: real mappings through the Mapper calls, access checks, repair, limits, threads.
#include "vfsdax/fs/dax_mapper.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "dax_fixtures.hpp"
#include "vfsdax/memory/guest_memory.hpp"

using namespace dax_test;
using vfsdax::GuestAddress;
using vfsdax::GuestMemory;
using vfsdax::fs::DaxMapper;
using vfsdax::fs::FileExtent;

namespace {

constexpr auto kScan = DaxMapper::TruncationScope::CutSinceMapped;
constexpr auto kAfterFault = DaxMapper::TruncationScope::CutOrAnyPastEnd;

constexpr uint64_t kUnit = DaxMapper::kWindowUnit;
constexpr uint64_t kTop = ~uint64_t{0};

std::unique_ptr<DaxMapper> make_mapper(uint64_t units = 4, std::size_t max_extents = 64) {
    auto mapper = DaxMapper::create({units * kUnit, max_extents});
    REQUIRE(mapper);
    return std::move(*mapper);
}

std::vector<FileExtent> whole(int fd, uint64_t file_offset, uint64_t length) {
    return {{fd, file_offset, length}};
}

}  // namespace

TEST_CASE("the window comes in 2 MiB units, 1 GiB by default, page-granular") {
    CHECK(error_of(DaxMapper::create({0, 8})) == EINVAL);
    CHECK(error_of(DaxMapper::create({kUnit + P, 8})) == EINVAL);
    CHECK(error_of(DaxMapper::create({kUnit, 0})) == EINVAL);
    auto mapper = DaxMapper::create({});
    REQUIRE(mapper);
    CHECK((*mapper)->window_size() == uint64_t{1} << 30);
    CHECK((uint64_t{1} << (*mapper)->map_alignment()) == P);
    CHECK(all_zero((*mapper)->window(), P));
}

TEST_CASE("a mapped file reads through the window and through GuestMemory at the BAR") {
    TempFile file(8);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 2 * P, 4 * P), false, 5));
    file.close_now();  // the mapping keeps the file
    CHECK(matches_file(mapper->window() + kUnit, 2 * P, 4 * P));

    GuestMemory memory;
    auto id = memory.add_unplaced_region(mapper->window_size(), mapper->window());
    REQUIRE(id);
    const uint64_t bar = uint64_t{1} << 40;
    REQUIRE(memory.place_region(*id, GuestAddress(bar)));
    auto span = memory.translate(GuestAddress(bar + kUnit + P), P);
    REQUIRE(span);
    CHECK(matches_file(span->data(), 3 * P, P));
}

TEST_CASE("a FUSE READ into a buffer in the window lands in the mapped file after sync") {
    TempFile target(2), source(4);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(target.fd(), 0, 2 * P), true, 1));
    GuestMemory memory;
    const uint64_t bar = uint64_t{1} << 32;
    REQUIRE(memory.add_region(GuestAddress(bar), mapper->window_size(), mapper->window()));
    // What the server does for FUSE_READ: preadv from the source file into the guest's buffer.
    auto buffer = memory.translate(GuestAddress(bar + P), P);
    REQUIRE(buffer);
    REQUIRE(pread(source.fd(), buffer->data(), P, 3 * P) == static_cast<ssize_t>(P));
    REQUIRE(mapper->sync(1));
    std::vector<std::byte> page(P);
    REQUIRE(pread(target.fd(), page.data(), P, P) == static_cast<ssize_t>(P));
    CHECK(matches_file(page.data(), 3 * P, P));
}

TEST_CASE("writes through the window reach the file on sync; removal leaves zeros") {
    TempFile file(4);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 0, 4 * P), true, 3));
    mapper->window()[kUnit + 2 * P + 1] = std::byte{0xee};
    REQUIRE(dirty_kib(mapper->window() + kUnit) > 0);
    CHECK(mapper->sync(4));  // another owner: nothing of its own to write
    CHECK(dirty_kib(mapper->window() + kUnit) > 0);
    REQUIRE(mapper->sync(3));
    CHECK(dirty_kib(mapper->window() + kUnit) == 0);
    unsigned char byte = 0;
    REQUIRE(pread(file.fd(), &byte, 1, 2 * P + 1) == 1);
    CHECK(byte == 0xee);

    REQUIRE(mapper->unmap(kUnit, 4 * P));
    CHECK(all_zero(mapper->window() + kUnit, 4 * P));
    REQUIRE(pread(file.fd(), &byte, 1, 2 * P + 1) == 1);
    CHECK(byte == 0xee);
    auto stats = mapper->stats();
    CHECK(stats.mappings_live == 0);
    CHECK(stats.setups == 1);
    CHECK(stats.removals == 1);
    CHECK(stats.bytes_mapped == 0);
}

TEST_CASE("sync_all writes back every owner's writable mappings") {
    TempFile a(1), b(1);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(a.fd(), 0, P), true, 1));
    REQUIRE(mapper->map(kUnit, whole(b.fd(), 0, P), true, 2));
    mapper->window()[3] = std::byte{0x11};
    mapper->window()[kUnit + 3] = std::byte{0x22};
    REQUIRE(dirty_kib(mapper->window()) > 0);
    REQUIRE(dirty_kib(mapper->window() + kUnit) > 0);
    REQUIRE(mapper->sync_all());
    CHECK(dirty_kib(mapper->window()) == 0);
    CHECK(dirty_kib(mapper->window() + kUnit) == 0);
    unsigned char byte = 0;
    REQUIRE(pread(a.fd(), &byte, 1, 3) == 1);
    CHECK(byte == 0x11);
    REQUIRE(pread(b.fd(), &byte, 1, 3) == 1);
    CHECK(byte == 0x22);
}

TEST_CASE("a multi-extent mapping shows a pool's scattered extents as one file") {
    // The pool holds the pieces of a logical file at pool pages 5-6, 1 and 10-12.
    TempFile pool(16);
    const std::vector<FileExtent> extents{
        {pool.fd(), 5 * P, 2 * P}, {pool.fd(), 1 * P, P}, {pool.fd(), 10 * P, 3 * P}};
    auto mapper = make_mapper();
    REQUIRE(mapper->map(2 * kUnit, extents, true, 9));
    std::byte* at = mapper->window() + 2 * kUnit;
    CHECK(matches_file(at, 5 * P, 2 * P));
    CHECK(matches_file(at + 2 * P, P, P));
    CHECK(matches_file(at + 3 * P, 10 * P, 3 * P));
    CHECK(all_zero(at + 6 * P, P));
    auto stats = mapper->stats();
    CHECK(stats.mappings_live == 1);
    CHECK(stats.extents == 3);
    CHECK(stats.bytes_mapped == 6 * P);

    // Logical page 2 is pool page 1.
    at[2 * P] = std::byte{0x5a};
    REQUIRE(mapper->sync(9));
    unsigned char byte = 0;
    REQUIRE(pread(pool.fd(), &byte, 1, P) == 1);
    CHECK(byte == 0x5a);

    // Removing logical pages 1-3 leaves pool page 5 and pool pages 11-12 mapped.
    REQUIRE(mapper->unmap(2 * kUnit + P, 3 * P));
    CHECK(matches_file(at, 5 * P, P));
    CHECK(all_zero(at + P, 3 * P));
    CHECK(matches_file(at + 4 * P, 11 * P, 2 * P));
    CHECK(mapper->stats().extents == 2);
}

TEST_CASE("overlapping setups replace and split in the window too") {
    TempFile a(8), b(8);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(a.fd(), 0, 8 * P), false, 1));
    REQUIRE(mapper->map(2 * P, whole(b.fd(), 4 * P, 2 * P), false, 2));
    std::byte* w = mapper->window();
    CHECK(matches_file(w, 0, 2 * P));
    CHECK(matches_file(w + 2 * P, 4 * P, 2 * P));
    CHECK(matches_file(w + 4 * P, 4 * P, 4 * P));
    CHECK(mapper->stats().mappings_live == 3);
    REQUIRE(mapper->map(0, whole(b.fd(), 0, 8 * P), false, 2));
    CHECK(matches_file(w, 0, 8 * P));
    CHECK(mapper->stats().mappings_live == 1);
}

TEST_CASE("a read-only mapping is upgraded to read-write") {
    TempFile file(2);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 2 * P), false, 1));
    CHECK_FALSE(kernel_can_write(mapper->window()));
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 2 * P), true, 1));
    CHECK(kernel_can_write(mapper->window()));
    CHECK(mapper->stats().mappings_live == 1);
    CHECK(mapper->stats().setups == 2);
}

TEST_CASE("the handle's open mode must allow the mapping; a refusal changes nothing") {
    TempFile file(2);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 2 * P), false, 1));
    const int read_only = open("/proc/self/exe", O_RDONLY);
    const int write_only = open("/dev/null", O_WRONLY);
    const int path_only = open("/proc/self/exe", O_PATH);
    REQUIRE(read_only >= 0);
    REQUIRE(write_only >= 0);
    REQUIRE(path_only >= 0);
    CHECK(error_of(mapper->map(0, whole(read_only, 0, 2 * P), true, 1)) == EACCES);
    CHECK(error_of(mapper->map(0, whole(write_only, 0, 2 * P), false, 1)) == EACCES);
    CHECK(error_of(mapper->map(0, whole(path_only, 0, 2 * P), false, 1)) == EBADF);
    CHECK(error_of(mapper->map(0, whole(-1, 0, 2 * P), false, 1)) == EBADF);
    // One bad extent among good ones refuses the whole request.
    const std::vector<FileExtent> mixed{{file.fd(), 0, P}, {read_only, 0, P}};
    CHECK(error_of(mapper->map(0, mixed, true, 1)) == EACCES);
    close(read_only);
    close(write_only);
    close(path_only);
    // The refused upgrade left the read-only mapping as it was.
    CHECK(matches_file(mapper->window(), 0, 2 * P));
    CHECK(mapper->stats().mappings_live == 1);
    CHECK(mapper->stats().setups == 1);
}

TEST_CASE("a refused setup into a free range leaves it free") {
    TempFile file(2);
    auto mapper = make_mapper();
    const int read_only = open("/proc/self/exe", O_RDONLY);
    REQUIRE(read_only >= 0);
    CHECK(error_of(mapper->map(0, whole(read_only, 0, P), true, 1)) == EACCES);
    CHECK(error_of(mapper->map(0, whole(-1, 0, P), false, 1)) == EBADF);
    // The first extent is mapped before the second is refused; neither may stay.
    const std::vector<FileExtent> mixed{{file.fd(), 0, P}, {read_only, 0, P}};
    CHECK(error_of(mapper->map(0, mixed, true, 1)) == EACCES);
    close(read_only);
    CHECK(all_zero(mapper->window(), 2 * P));
    CHECK(kernel_can_write(mapper->window()));
    auto stats = mapper->stats();
    CHECK(stats.mappings_live == 0);
    CHECK(stats.extents == 0);
    CHECK(stats.setups == 0);
    REQUIRE(mapper->map(0, whole(file.fd(), 0, P), true, 1));
    CHECK(matches_file(mapper->window(), 0, P));
}

TEST_CASE("hostile offsets and lengths are refused without touching the window") {
    TempFile file(2);
    auto mapper = make_mapper(1);
    REQUIRE(mapper->map(0, whole(file.fd(), 0, P), false, 1));
    CHECK(error_of(mapper->map(kUnit, whole(file.fd(), 0, P), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(kTop - P + 1, whole(file.fd(), 0, 2 * P), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(P, whole(file.fd(), 0, kTop - P + 1), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(P, whole(file.fd(), kTop - P + 1, P), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(P + 1, whole(file.fd(), 0, P), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(P, whole(file.fd(), 0, P - 1), false, 1)) == EINVAL);
    CHECK(error_of(mapper->map(P, {}, false, 1)) == EINVAL);
    CHECK(error_of(mapper->unmap(kTop - P + 1, 2 * P)) == EINVAL);
    CHECK(error_of(mapper->unmap(0, kUnit + P)) == EINVAL);
    CHECK(error_of(mapper->unmap(0, 0)) == EINVAL);
    CHECK(error_of(mapper->repair(kUnit)) == EINVAL);
    CHECK(error_of(mapper->repair(kTop)) == EINVAL);
    CHECK(matches_file(mapper->window(), 0, P));
    auto stats = mapper->stats();
    CHECK(stats.setups == 1);
    CHECK(stats.removals == 0);
}

TEST_CASE("setups fail with ENOSPC while the extent limit is reached, and work after removal") {
    TempFile file(4);
    auto mapper = make_mapper(4, 2);
    REQUIRE(mapper->map(0, whole(file.fd(), 0, P), false, 1));
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 0, P), false, 1));
    CHECK(error_of(mapper->map(2 * kUnit, whole(file.fd(), P, P), false, 1)) == ENOSPC);
    CHECK(all_zero(mapper->window() + 2 * kUnit, P));
    REQUIRE(mapper->unmap(0, kUnit));
    REQUIRE(mapper->map(2 * kUnit, whole(file.fd(), P, P), false, 1));
    CHECK(matches_file(mapper->window() + 2 * kUnit, P, P));
}

TEST_CASE("repair at an address past the end shadows from the end; growth maps the file back") {
    TempFile file(4);
    auto mapper = make_mapper();
    std::byte* at = mapper->window() + kUnit;
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 0, 4 * P), true, 7));
    at[10] = std::byte{0x42};  // dirtied by the guest before the host shrinks the file
    REQUIRE(ftruncate(file.fd(), P) == 0);
    CHECK(kernel_can_read(at));
    CHECK_FALSE(kernel_can_read(at + 2 * P));  // a plain load here would be SIGBUS

    REQUIRE(mapper->repair(kUnit + 2 * P + 8));
    CHECK(kernel_can_read(at + 2 * P));
    CHECK(all_zero(at + P, 3 * P));
    CHECK(static_cast<unsigned char>(at[10]) == 0x42);  // the page inside the file is the file's
    auto stats = mapper->stats();
    CHECK(stats.mappings_live == 1);
    CHECK(stats.mappings_dead == 0);
    CHECK(stats.extents_shadowed == 1);
    CHECK(stats.repairs == 1);
    CHECK(stats.bytes_mapped == 4 * P);

    // A second vCPU faulting on the same range finds it repaired already.
    CHECK(mapper->repair(kUnit + 3 * P));
    CHECK(mapper->stats().repairs == 1);
    CHECK(error_of(mapper->repair(0)) == ENOENT);

    // The file grows: from the owner's next size change on, the range is the file again.
    REQUIRE(ftruncate(file.fd(), 3 * P) == 0);
    REQUIRE(mapper->follow_file_size(7));
    CHECK(mapper->stats().restores == 1);
    CHECK(mapper->stats().extents_shadowed == 1);  // the last page is still past the end
    at[2 * P + 1] = std::byte{0x33};
    unsigned char byte = 0;
    REQUIRE(pread(file.fd(), &byte, 1, 2 * P + 1) == 1);
    CHECK(byte == 0x33);
    CHECK(mapper->sync(7));
    // The guest's own REMOVEMAPPING takes it all.
    REQUIRE(mapper->unmap(kUnit, 4 * P));
    CHECK(mapper->stats().mappings_live == 0);
    CHECK(mapper->stats().extents_shadowed == 0);
}

TEST_CASE("follow_file_size maps back only its owner's ranges, and only what the file covers") {
    TempFile first(4), second(4);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(first.fd(), 0, 4 * P), true, 1));
    REQUIRE(mapper->map(kUnit, whole(second.fd(), 0, 4 * P), true, 2));
    REQUIRE(ftruncate(first.fd(), P) == 0);
    REQUIRE(ftruncate(second.fd(), P) == 0);
    CHECK(mapper->repair_truncated(kScan) == 2u);
    REQUIRE(ftruncate(first.fd(), 4 * P) == 0);
    REQUIRE(ftruncate(second.fd(), 4 * P) == 0);
    REQUIRE(mapper->follow_file_size(1));
    CHECK(kernel_can_write(mapper->window() + 3 * P));
    CHECK(mapper->stats().extents_shadowed == 1);  // owner 2's waits for its own change
    CHECK(mapper->repair_truncated(kScan) == 0u);  // or for the scan, which maps it back too
    CHECK(mapper->stats().extents_shadowed == 0);
    CHECK(mapper->stats().restores == 2);
    // Nothing shadowed: a cheap no-op.
    REQUIRE(mapper->follow_file_size(1));
    CHECK(mapper->stats().restores == 2);
}

TEST_CASE("repair_truncated repairs exactly what the host cut off a mapped file") {
    TempFile big(16), small(1), other(4);
    REQUIRE(ftruncate(small.fd(), 100) == 0);
    auto mapper = make_mapper();
    std::byte* big_at = mapper->window() + kUnit;
    std::byte* small_at = mapper->window() + 2 * kUnit;
    REQUIRE(mapper->map(kUnit, whole(big.fd(), 0, 16 * P), true, 1));
    // A small file's mapping reaches past its end from the start, as the guest's 2 MiB ranges
    // do; the guest reads that tail only once the file grew, so it must stay mapped.
    REQUIRE(mapper->map(2 * kUnit, whole(small.fd(), 0, 4 * P), false, 2));

    REQUIRE(ftruncate(big.fd(), P + 1) == 0);  // the page holding the new end stays readable
    CHECK(mapper->repair_truncated(kScan) == 1u);
    CHECK(all_zero(big_at + 2 * P, 14 * P));  // a plain load: SIGBUS here would end the test
    CHECK(matches_file(big_at, 0, P + 1));
    const unsigned char mark = 0x5a;
    REQUIRE(pwrite(big.fd(), &mark, 1, 10) == 1);
    CHECK(static_cast<unsigned char>(big_at[10]) == mark);  // still the file, not a copy
    CHECK_FALSE(kernel_can_read(small_at + P));             // not the small file's tail
    auto stats = mapper->stats();
    CHECK(stats.repairs == 1);
    CHECK(stats.mappings_live == 2);
    CHECK(stats.mappings_dead == 0);
    CHECK(stats.extents_shadowed == 1);
    CHECK(stats.bytes_mapped == 16 * P + 4 * P);

    // The small file grows: the guest reads the new part through its old mapping.
    std::vector<unsigned char> page(P, 0x77);
    REQUIRE(pwrite(small.fd(), page.data(), P, 3 * P) == static_cast<ssize_t>(P));
    CHECK(static_cast<unsigned char>(small_at[3 * P + 5]) == 0x77);
    CHECK(mapper->repair_truncated(kAfterFault) == 0u);

    // The guest's REMOVEMAPPING of its whole range takes the shadowed part too.
    REQUIRE(mapper->unmap(kUnit, 16 * P));
    CHECK(mapper->stats().extents_shadowed == 0);
    CHECK(mapper->stats().mappings_live == 1);
}

TEST_CASE("repair_truncated cuts one extent of a multi-extent mapping and keeps the next") {
    TempFile first(4), second(4);
    auto mapper = make_mapper();
    const std::vector<FileExtent> extents{{first.fd(), 0, 4 * P}, {second.fd(), 0, 4 * P}};
    REQUIRE(mapper->map(0, extents, false, 1));
    CHECK(mapper->repair_truncated(kAfterFault) ==
          0u);  // nothing past the end: the fault is elsewhere
    CHECK(mapper->stats().repairs == 0);
    REQUIRE(ftruncate(first.fd(), P) == 0);
    CHECK(mapper->repair_truncated(kAfterFault) == 1u);
    CHECK(matches_file(mapper->window(), 0, P));
    CHECK(all_zero(mapper->window() + P, 3 * P));
    CHECK(matches_file(mapper->window() + 4 * P, 0, 4 * P));
    CHECK(mapper->stats().mappings_live == 1);
    CHECK(mapper->stats().extents == 2);
    CHECK(mapper->stats().extents_shadowed == 1);
    // The first file grows back: only its extent is mapped again.
    REQUIRE(ftruncate(first.fd(), 4 * P) == 0);
    REQUIRE(mapper->follow_file_size(1));
    CHECK(mapper->stats().extents_shadowed == 0);
    CHECK(all_zero(mapper->window() + P, 3 * P));  // the regrown part of the file: zeros
    CHECK(kernel_can_read(mapper->window() + 3 * P));
    CHECK_FALSE(kernel_can_write(mapper->window() + 3 * P));  // still read-only
    CHECK(matches_file(mapper->window() + 4 * P, 0, 4 * P));
}

TEST_CASE("without a range cut since mapped, repair_truncated takes every tail past the end") {
    // The file was small when mapped, grew, and shrank again: which tail the guest touched
    // cannot be told, so every range past its end is repaired rather than fault forever.
    TempFile file(1), intact(2);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 4 * P), false, 1));
    REQUIRE(mapper->map(kUnit, whole(intact.fd(), 0, 2 * P), false, 2));
    REQUIRE(ftruncate(file.fd(), 4 * P) == 0);
    REQUIRE(ftruncate(file.fd(), 2 * P) == 0);
    // A periodic scan repairs only what was certainly cut, and that is none of these.
    CHECK(mapper->repair_truncated(kScan) == 0u);
    CHECK(kernel_can_read(mapper->window() + P));
    CHECK(mapper->repair_truncated(kAfterFault) == 1u);
    CHECK(matches_file(mapper->window(), 0, P));
    CHECK(all_zero(mapper->window() + 2 * P, 2 * P));
    CHECK(matches_file(mapper->window() + kUnit, 0, 2 * P));
    CHECK(mapper->stats().extents_shadowed == 1);
    CHECK(mapper->repair_truncated(kAfterFault) == 0u);
}

TEST_CASE("a store fault inside the file kills the mapping: zeros, the file untouched") {
    TempFile file(4);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 0, 4 * P), false, 3));
    REQUIRE(mapper->repair(kUnit + P));
    CHECK(all_zero(mapper->window() + kUnit, 4 * P));
    CHECK(kernel_can_write(mapper->window() + kUnit + P));
    auto stats = mapper->stats();
    CHECK(stats.mappings_dead == 1);
    CHECK(stats.mappings_live == 0);
    CHECK(mapper->repair(kUnit));  // dead already
    CHECK(mapper->stats().repairs == 1);
    REQUIRE(mapper->unmap(kUnit, 4 * P));
    CHECK(mapper->stats().mappings_dead == 0);
}

TEST_CASE("each mapped extent holds its file open until it is removed") {
    TempFile file(4);
    auto mapper = make_mapper();
    auto fds = [] {
        int n = 0;
        for (int fd = 0; fd < 4096; ++fd) n += fcntl(fd, F_GETFD) >= 0;
        return n;
    };
    const int before = fds();
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 2 * P), true, 1));
    REQUIRE(mapper->map(kUnit, whole(file.fd(), 0, 2 * P), true, 1));
    CHECK(fds() == before + 2);
    REQUIRE(mapper->unmap(0, P));  // half of one: its other half still holds the file
    CHECK(fds() == before + 2);
    REQUIRE(mapper->unmap(0, kUnit));
    CHECK(fds() == before + 1);
    REQUIRE(mapper->reset());
    CHECK(fds() == before);
}

TEST_CASE("reset drops every mapping and zeroes the window") {
    TempFile file(2);
    auto mapper = make_mapper();
    REQUIRE(mapper->map(0, whole(file.fd(), 0, 2 * P), true, 1));
    REQUIRE(mapper->map(3 * kUnit, whole(file.fd(), 0, P), false, 2));
    REQUIRE(mapper->reset());
    CHECK(all_zero(mapper->window(), 2 * P));
    CHECK(all_zero(mapper->window() + 3 * kUnit, P));
    CHECK(mapper->stats().mappings_live == 0);
    CHECK(mapper->stats().extents == 0);
}

TEST_CASE("worker threads map and unmap their own ranges concurrently") {
    constexpr int kThreads = 4;
    constexpr int kRounds = 200;
    TempFile file(kThreads);
    auto mapper = make_mapper(kThreads);
    std::vector<std::thread> workers;
    std::vector<int> failures(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&, t] {
            const uint64_t offset = static_cast<uint64_t>(t) * kUnit;
            for (int round = 0; round < kRounds; ++round) {
                auto extent = whole(file.fd(), static_cast<uint64_t>(t) * P, P);
                const bool ok = mapper->map(offset, extent, true, static_cast<uint64_t>(t)) &&
                                matches_file(mapper->window() + offset, t * P, P) &&
                                mapper->sync(static_cast<uint64_t>(t)) &&
                                mapper->unmap(offset, P) && all_zero(mapper->window() + offset, P);
                if (!ok) ++failures[static_cast<std::size_t>(t)];
            }
        });
    }
    // The VMM's repair walks the table while the workers change it; nothing is cut off.
    std::size_t repaired = 0;
    for (int round = 0; round < kRounds; ++round)
        repaired += mapper->repair_truncated(kAfterFault).value_or(1);
    for (auto& worker : workers) worker.join();
    CHECK(repaired == 0);
    CHECK(failures == std::vector<int>(kThreads, 0));
    auto stats = mapper->stats();
    CHECK(stats.setups == kThreads * kRounds);
    CHECK(stats.removals == kThreads * kRounds);
    CHECK(stats.mappings_live == 0);
}
