// SPDX-License-Identifier: Apache-2.0
// DAX fault handler: a device-side access past a truncated file's end in the window, or a
// store into a range mapped read-only, lands on zeros instead of killing the process; a SIGBUS
// or SIGSEGV anywhere else still kills it.
#include "vfsdax/fs/dax_fault_handler.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "dax_fixtures.hpp"
#include "vfsdax/fs/dax_mapper.hpp"

using namespace dax_test;
using vfsdax::fs::DaxMapper;
using vfsdax::fs::FileExtent;

namespace {

std::unique_ptr<DaxMapper> make_mapper() {
    auto mapper = DaxMapper::create({DaxMapper::kWindowUnit, 16});
    REQUIRE(mapper.has_value());
    return std::move(*mapper);
}

// The test file's four pages at the window's start, for owner 1.
void map_whole(DaxMapper& mapper, const TempFile& file, bool writable) {
    const FileExtent extent{file.fd(), 0, 4 * P};
    REQUIRE(mapper.map(0, {&extent, 1}, writable, 1));
}

}  // namespace

TEST_CASE("device copies from and to a truncated window page see zeros, once per page") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    REQUIRE(vfsdax::fs::install_dax_fault_handler());  // again: harmless
    TempFile file(4);
    auto mapper = make_mapper();
    map_whole(*mapper, file, true);
    REQUIRE(ftruncate(file.fd(), P) == 0);
    std::byte* window = mapper->window();
    REQUIRE_FALSE(kernel_can_read(window + 2 * P));

    // What a ChainReader does with a request header in the window: a plain memcpy.
    std::vector<std::byte> copy(64, std::byte{0xff});
    std::memcpy(copy.data(), window + 2 * P + 8, copy.size());
    CHECK(all_zero(copy.data(), copy.size()));
    CHECK(mapper->stats().faulted_pages == 1);
    // And a reply written there.
    std::memset(window + 3 * P, 0x42, 16);
    CHECK(static_cast<unsigned char>(window[3 * P + 15]) == 0x42);
    CHECK(mapper->stats().faulted_pages == 2);
    // The pages still inside the file are the file's.
    CHECK(matches_file(window, 0, P));
    CHECK(mapper->stats().mappings_live == 1);
}

TEST_CASE("a device store into a read-only window range lands on zeros, never in the file") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    TempFile file(4);
    auto mapper = make_mapper();
    map_whole(*mapper, file, false);
    std::byte* window = mapper->window();
    REQUIRE_FALSE(kernel_can_write(window + P));

    // Loads are the file's and cost nothing.
    CHECK(matches_file(window, 0, 4 * P));
    CHECK(mapper->stats().faulted_pages == 0);
    // What a ChainWriter does with a reply (or a push with a used ring) placed there.
    std::memset(window + P + 8, 0x42, 16);
    CHECK(static_cast<unsigned char>(window[P + 8 + 15]) == 0x42);
    CHECK(all_zero(window + P, 8));
    CHECK(mapper->stats().faulted_pages == 1);
    // Only that page left the file; the file itself is untouched.
    CHECK(matches_file(window, 0, P));
    CHECK(matches_file(window + 2 * P, 2 * P, 2 * P));
    std::vector<std::byte> on_disk(4 * P);
    REQUIRE(pread(file.fd(), on_disk.data(), on_disk.size(), 0) == static_cast<ssize_t>(4 * P));
    CHECK(matches_file(on_disk.data(), 0, 4 * P));
}

TEST_CASE("a SIGSEGV outside every window still ends the process") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    auto mapper = make_mapper();  // a watched window elsewhere must not swallow the fault
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        void* at = mmap(nullptr, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (at == MAP_FAILED) _exit(2);
        *static_cast<volatile char*>(at) = 1;
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    // Killed by SIGSEGV, or (under ASan, whose handler we chain to) reported and exited.
    CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGSEGV);
}

TEST_CASE("a SIGBUS outside every window still ends the process") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    auto mapper = make_mapper();  // a watched window elsewhere must not swallow the fault
    TempFile file(2);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        void* at = mmap(nullptr, 2 * P, PROT_READ, MAP_SHARED, file.fd(), 0);
        if (at == MAP_FAILED || ftruncate(file.fd(), 0) != 0) _exit(2);
        volatile const char* bytes = static_cast<const char*>(at);
        (void)bytes[P];
        _exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    // Killed by SIGBUS, or (under ASan, whose handler we chain to) reported and exited.
    CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGBUS);
}

TEST_CASE("windows are watched from creation to destruction") {
    std::vector<std::unique_ptr<DaxMapper>> mappers;
    for (;;) {
        auto made = DaxMapper::create({DaxMapper::kWindowUnit, 1});
        if (!made) {
            CHECK(made.error() == EMFILE);
            break;
        }
        mappers.push_back(std::move(*made));
        REQUIRE(mappers.size() <= 64);
    }
    CHECK_FALSE(mappers.empty());
    mappers.pop_back();  // frees a slot
    CHECK(DaxMapper::create({DaxMapper::kWindowUnit, 1}).has_value());
}

TEST_CASE("a page the handler zeroed past the end is the file's again once the file grows") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    TempFile file(4);
    auto mapper = make_mapper();
    map_whole(*mapper, file, true);
    REQUIRE(ftruncate(file.fd(), P) == 0);
    std::byte* window = mapper->window();
    std::vector<std::byte> copy(16);
    std::memcpy(copy.data(), window + 2 * P, copy.size());  // zeroed by the handler
    CHECK(mapper->stats().faulted_pages == 1);
    // Only the page the device touched was zeroed; the next locked call shadows the rest of
    // the range past the end, so nothing there can fault again.
    REQUIRE(mapper->repair_truncated(DaxMapper::TruncationScope::CutSinceMapped));
    CHECK(kernel_can_read(window + 3 * P));
    CHECK(mapper->stats().extents_shadowed == 1);
    // The guest grows the file: the range maps the file again, stores reach it.
    REQUIRE(ftruncate(file.fd(), 4 * P) == 0);
    REQUIRE(mapper->follow_file_size(1));
    CHECK(mapper->stats().extents_shadowed == 0);
    window[2 * P + 3] = std::byte{0x6d};
    unsigned char byte = 0;
    REQUIRE(pread(file.fd(), &byte, 1, 2 * P + 3) == 1);
    CHECK(byte == 0x6d);
    CHECK(mapper->stats().faulted_pages == 1);
}

TEST_CASE("after a store into a read-only range, the next locked call maps the file back") {
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    TempFile file(4);
    auto mapper = make_mapper();
    map_whole(*mapper, file, false);
    std::byte* window = mapper->window();
    std::memset(window + P + 8, 0x42, 16);  // the device's store lands on zeros
    CHECK(mapper->stats().faulted_pages == 1);
    REQUIRE(mapper->follow_file_size(1));
    // The guest reads its file through the range again; the store never reached the file.
    CHECK(matches_file(window, 0, 4 * P));
    CHECK_FALSE(kernel_can_write(window + P));
    CHECK(mapper->stats().extents_shadowed == 0);
    CHECK(mapper->stats().mappings_live == 1);
}

TEST_CASE("windows come and go while the handler zeroes pages in another window") {
    // The handler walks every watched window; one being destroyed meanwhile must wait for it,
    // not be read after it is freed (ASan would report that here).
    REQUIRE(vfsdax::fs::install_dax_fault_handler());
    TempFile file(2);
    auto mapper = make_mapper();
    std::atomic<bool> done{false};
    std::atomic<int> refused{0};
    std::thread churn([&] {
        while (!done.load()) {
            if (!DaxMapper::create({DaxMapper::kWindowUnit, 4})) ++refused;
        }
    });
    const FileExtent extent{file.fd(), 0, 2 * P};
    std::byte* window = mapper->window();
    for (int round = 0; round < 300; ++round) {
        REQUIRE(ftruncate(file.fd(), 2 * P) == 0);
        REQUIRE(mapper->map(0, {&extent, 1}, true, 1));
        REQUIRE(ftruncate(file.fd(), P) == 0);
        std::byte byte{0x7f};
        std::memcpy(&byte, window + P + 1, 1);  // past the end: the handler zeroes the page
        CHECK(byte == std::byte{0});
    }
    done.store(true);
    churn.join();
    CHECK(refused.load() == 0);
    CHECK(mapper->stats().faulted_pages == 300);
}
