// SPDX-License-Identifier: Apache-2.0
// Test helpers for the dax suite: patterned temporary files and signal-free memory probes.
#pragma once

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dax_test {

inline const uint64_t P = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// The errno a call failed with, 0 if it succeeded: a check for an error must fail cleanly, not
// read error() from a success.
template <typename T>
int error_of(const std::expected<T, int>& result) {
    return result ? 0 : result.error();
}

// The byte a TempFile holds at `file_byte`: page number and offset mixed, so a page read from
// the wrong place or at the wrong offset shows.
inline unsigned char pattern(uint64_t file_byte) {
    return static_cast<unsigned char>((file_byte / P) * 31 + file_byte % P);
}

// An unlinked temporary file of `pages` pages holding pattern(), open read-write.
class TempFile {
public:
    explicit TempFile(uint64_t pages) {
        std::string path = "/tmp/vfsdax-dax-XXXXXX";
        fd_ = mkstemp(path.data());
        REQUIRE(fd_ >= 0);
        unlink(path.c_str());
        std::vector<unsigned char> data(pages * P);
        for (uint64_t i = 0; i < data.size(); ++i) data[i] = pattern(i);
        REQUIRE(pwrite(fd_, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        if (fd_ >= 0) close(fd_);
    }
    int fd() const { return fd_; }
    void close_now() {
        close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

inline bool matches_file(const std::byte* at, uint64_t file_offset, uint64_t length) {
    for (uint64_t i = 0; i < length; ++i) {
        if (static_cast<unsigned char>(at[i]) != pattern(file_offset + i)) return false;
    }
    return true;
}

inline bool all_zero(const std::byte* at, uint64_t length) {
    for (uint64_t i = 0; i < length; ++i) {
        if (at[i] != std::byte{0}) return false;
    }
    return true;
}

// The kernel copies these and reports EFAULT where a plain load or store would raise SIGBUS
// (a page past the end of a shrunk file) or SIGSEGV (a read-only page).
inline bool kernel_can_read(const std::byte* at) {
    char byte = 0;
    iovec local{&byte, 1};
    iovec remote{const_cast<std::byte*>(at), 1};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1;
}

inline bool kernel_can_write(std::byte* at) {
    char byte = 1;
    iovec local{&byte, 1};
    iovec remote{at, 1};
    return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == 1;
}

// Kilobytes of the mapping holding `at` that are dirty (written, not yet written back), from
// /proc/self/smaps: how a test sees that a sync did write pages back, which reading the file
// could not tell (a read sees the page cache whether it was written back or not).
inline uint64_t dirty_kib(const void* at) {
    const auto address = reinterpret_cast<uintptr_t>(at);
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    uint64_t dirty = 0;
    while (std::getline(smaps, line)) {
        uintptr_t start = 0, end = 0;
        char dash = 0;
        std::istringstream fields(line);
        if (fields >> std::hex >> start >> dash >> end && dash == '-') {
            if (inside) break;
            inside = start <= address && address < end;
            continue;
        }
        std::string key;
        uint64_t kib = 0;
        std::istringstream entry(line);
        if (inside && entry >> key >> kib && (key == "Shared_Dirty:" || key == "Private_Dirty:")) {
            dirty += kib;
        }
    }
    return dirty;
}

}  // namespace dax_test
