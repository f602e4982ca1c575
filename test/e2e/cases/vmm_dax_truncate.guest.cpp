// SPDX-License-Identifier: Apache-2.0
// L2 helper of vmm_dax_truncate: holds a DAX mmap of a file while the host shrinks it, then touches
// it. Usage: vmm_dax_truncate_guest FILE FLAG NEW_SIZE
//   maps FILE whole (MAP_SHARED, read-only), reads every page and checks it against read(2),
//   prints "L2-DAX-MAPPED: N bytes", waits (up to 300 s) for FLAG to exist (the host's signal
//   that it shrank FILE to NEW_SIZE; then prints "L2-DAX-FLAG-SEEN"), reads one byte of every page past the page holding the
//   new end, and prints "L2-DAX-TOUCHED: pages=P zero=Z sigbus=B other=O". Exit 0 when every
//   such page read as zeros or raised SIGBUS (both are fine for the guest's kernel to do) and
//   the first NEW_SIZE bytes still read as before; 1 otherwise, with the reason on stderr.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

sigjmp_buf g_touch;

void on_sigbus(int) {
    siglongjmp(g_touch, 1);
}

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "vmm_dax_truncate_guest: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

// The byte at `at`, or -1 if reading it raised SIGBUS.
int touch(const volatile unsigned char* at) {
    if (sigsetjmp(g_touch, 1) != 0) return -1;
    return *at;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: vmm_dax_truncate_guest FILE FLAG NEW_SIZE\n");
        return 2;
    }
    const char* path = argv[1];
    const char* flag = argv[2];
    const auto new_size = std::strtoull(argv[3], nullptr, 10);
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));

    const int fd = open(path, O_RDONLY);
    if (fd < 0) die(std::string("open ") + path);
    struct stat st {};
    if (fstat(fd, &st) != 0) die("fstat");
    const auto size = static_cast<size_t>(st.st_size);
    if (size <= new_size + page) {
        std::fprintf(stderr, "vmm_dax_truncate_guest: %s is too small (%zu bytes)\n", path, size);
        return 1;
    }
    std::vector<unsigned char> expect(size);
    if (pread(fd, expect.data(), size, 0) != static_cast<ssize_t>(size)) die("pread");
    void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap");
    const auto* bytes = static_cast<const unsigned char*>(base);
    if (std::memcmp(bytes, expect.data(), size) != 0) {
        std::fprintf(stderr, "vmm_dax_truncate_guest: the mapping differs from read(2)\n");
        return 1;
    }
    std::printf("L2-DAX-MAPPED: %zu bytes\n", size);
    std::fflush(stdout);

    struct stat flag_st {};
    int waited_ms = 0;
    while (stat(flag, &flag_st) != 0) {
        if (waited_ms >= 300000) die(std::string("waiting for ") + flag);
        usleep(100000);
        waited_ms += 100;
    }
    std::printf("L2-DAX-FLAG-SEEN after %d ms\n", waited_ms);
    std::fflush(stdout);

    struct sigaction bus {};
    bus.sa_handler = on_sigbus;
    sigemptyset(&bus.sa_mask);
    if (sigaction(SIGBUS, &bus, nullptr) != 0) die("sigaction");
    const size_t first = (new_size + page - 1) / page * page;
    size_t pages = 0, zero = 0, sigbus = 0, other = 0;
    for (size_t at = first; at < size; at += page) {
        const int byte = touch(bytes + at);
        ++pages;
        if (byte < 0) {
            ++sigbus;
        } else if (byte == 0) {
            ++zero;
        } else {
            ++other;
        }
    }
    std::printf("L2-DAX-TOUCHED: pages=%zu zero=%zu sigbus=%zu other=%zu\n", pages, zero, sigbus,
                other);
    std::fflush(stdout);
    const int head = touch(bytes + new_size - 1);
    if (head < 0 || std::memcmp(bytes, expect.data(), new_size) != 0) {
        std::fprintf(stderr, "vmm_dax_truncate_guest: the first %llu bytes changed\n",
                     static_cast<unsigned long long>(new_size));
        return 1;
    }
    munmap(base, size);
    close(fd);
    return other == 0 ? 0 : 1;
}
