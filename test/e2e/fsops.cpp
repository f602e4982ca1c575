// SPDX-License-Identifier: Apache-2.0
// fsops: static helper for e2e cases: the syscalls busybox lacks (mmap, fsync, xattrs, statx DAX).
//
// Built statically so the same binary runs in the L2 initramfs (no libc there) and in L1/the host.
// Usage (each prints a clear "fsops: ..." error and exits 1 on failure, 2 on bad usage):
//   fsops mmap-write FILE OFFSET TEXT   MAP_SHARED store of TEXT at OFFSET, msync(MS_SYNC)
//   fsops mmap-read FILE OFFSET LEN     MAP_SHARED load of LEN bytes at OFFSET, to stdout
//   fsops fsync FILE                    open O_RDWR, fsync(2), fdatasync(2)
//   fsops xattr-set FILE NAME VALUE     setxattr(2)
//   fsops xattr-get FILE NAME           getxattr(2), the value to stdout (no newline)
//   fsops xattr-probe DIR               prints the first namespace (user, trusted) whose xattrs
//                                       DIR's filesystem stores, or none
//   fsops dax FILE                      prints "dax" or "nodax" from statx's STATX_ATTR_DAX
//   fsops read-time FILE                read(2) the whole file in 1 MiB calls; prints
//                                       "bytes=B ns=T" (CLOCK_MONOTONIC around the reads)
//   fsops stat-time DIR N               stat(2) DIR/f1 .. DIR/fN; prints "files=N ns=T"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "fsops: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: fsops mmap-write FILE OFFSET TEXT | mmap-read FILE OFFSET LEN | "
                 "fsync FILE | xattr-set FILE NAME VALUE | xattr-get FILE NAME | "
                 "xattr-probe DIR | dax FILE | read-time FILE | stat-time DIR N\n");
    std::exit(2);
}

off_t number(const char* text) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0' || v < 0) {
        std::fprintf(stderr, "fsops: '%s' is not a non-negative number\n", text);
        std::exit(2);
    }
    return static_cast<off_t>(v);
}

// Maps [offset, offset + len) of fd with a page-aligned start; returns the byte at offset.
char* map_range(int fd, off_t offset, size_t len, int prot, void** base, size_t* maplen) {
    const off_t page = sysconf(_SC_PAGESIZE);
    const off_t start = offset - offset % page;
    *maplen = static_cast<size_t>(offset - start) + len;
    *base = mmap(nullptr, *maplen, prot, MAP_SHARED, fd, start);
    if (*base == MAP_FAILED) die("mmap");
    return static_cast<char*>(*base) + (offset - start);
}

int open_or_die(const char* path, int flags) {
    const int fd = open(path, flags);
    if (fd < 0) die(std::string("open ") + path);
    return fd;
}

int mmap_write(const char* path, off_t offset, const char* text) {
    const int fd = open_or_die(path, O_RDWR);
    struct stat st {};
    if (fstat(fd, &st) != 0) die("fstat");
    const size_t len = std::strlen(text);
    if (offset + static_cast<off_t>(len) > st.st_size) {
        errno = EINVAL;
        die("the text would end past the end of the file (mmap cannot grow it)");
    }
    void* base = nullptr;
    size_t maplen = 0;
    char* p = map_range(fd, offset, len, PROT_READ | PROT_WRITE, &base, &maplen);
    std::memcpy(p, text, len);
    if (msync(base, maplen, MS_SYNC) != 0) die("msync");
    if (munmap(base, maplen) != 0) die("munmap");
    close(fd);
    return 0;
}

int mmap_read(const char* path, off_t offset, size_t len) {
    const int fd = open_or_die(path, O_RDONLY);
    void* base = nullptr;
    size_t maplen = 0;
    const char* p = map_range(fd, offset, len, PROT_READ, &base, &maplen);
    if (fwrite(p, 1, len, stdout) != len) die("write stdout");
    if (munmap(base, maplen) != 0) die("munmap");
    close(fd);
    return 0;
}

int do_fsync(const char* path) {
    const int fd = open_or_die(path, O_RDWR);
    if (fsync(fd) != 0) die("fsync");
    if (fdatasync(fd) != 0) die("fdatasync");
    close(fd);
    return 0;
}

int xattr_get(const char* path, const char* name) {
    char buf[4096];
    const ssize_t n = getxattr(path, name, buf, sizeof buf);
    if (n < 0) die(std::string("getxattr ") + name);
    if (fwrite(buf, 1, static_cast<size_t>(n), stdout) != static_cast<size_t>(n))
        die("write stdout");
    return 0;
}

int xattr_probe(const char* dir) {
    const std::string probe = std::string(dir) + "/.fsops-xattr-probe";
    const int fd = open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) die("create " + probe);
    close(fd);
    const char* found = "none";
    for (const char* ns : {"user", "trusted"}) {
        const std::string name = std::string(ns) + ".fsops_probe";
        if (setxattr(probe.c_str(), name.c_str(), "1", 1, 0) == 0) {
            found = ns;
            break;
        }
    }
    if (unlink(probe.c_str()) != 0) die("unlink " + probe);
    std::printf("%s\n", found);
    return 0;
}

int dax(const char* path) {
    struct statx stx {};
    if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx) != 0) die(std::string("statx ") + path);
    if (!(stx.stx_attributes_mask & STATX_ATTR_DAX)) {
        errno = ENOTSUP;
        die("this kernel does not report STATX_ATTR_DAX");
    }
    std::printf("%s\n", (stx.stx_attributes & STATX_ATTR_DAX) ? "dax" : "nodax");
    return 0;
}

long long now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

int read_time(const char* path) {
    const int fd = open_or_die(path, O_RDONLY);
    std::vector<char> buf(1 << 20);
    long long total = 0;
    const long long t0 = now_ns();
    for (;;) {
        const ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0) die(std::string("read ") + path);
        if (n == 0) break;
        total += n;
    }
    const long long t1 = now_ns();
    close(fd);
    std::printf("bytes=%lld ns=%lld\n", total, t1 - t0);
    return 0;
}

int stat_time(const char* dir, off_t count) {
    std::vector<std::string> names;
    for (off_t i = 1; i <= count; ++i) names.push_back(std::string(dir) + "/f" + std::to_string(i));
    struct stat st {};
    const long long t0 = now_ns();
    for (const auto& name : names)
        if (stat(name.c_str(), &st) != 0) die("stat " + name);
    const long long t1 = now_ns();
    std::printf("files=%lld ns=%lld\n", static_cast<long long>(count), t1 - t0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) usage();
    const std::string cmd = argv[1];
    if (cmd == "mmap-write" && argc == 5) return mmap_write(argv[2], number(argv[3]), argv[4]);
    if (cmd == "mmap-read" && argc == 5)
        return mmap_read(argv[2], number(argv[3]), static_cast<size_t>(number(argv[4])));
    if (cmd == "fsync" && argc == 3) return do_fsync(argv[2]);
    if (cmd == "xattr-set" && argc == 5) {
        if (setxattr(argv[2], argv[3], argv[4], std::strlen(argv[4]), 0) != 0)
            die(std::string("setxattr ") + argv[3]);
        return 0;
    }
    if (cmd == "xattr-get" && argc == 4) return xattr_get(argv[2], argv[3]);
    if (cmd == "xattr-probe" && argc == 3) return xattr_probe(argv[2]);
    if (cmd == "dax" && argc == 3) return dax(argv[2]);
    if (cmd == "read-time" && argc == 3) return read_time(argv[2]);
    if (cmd == "stat-time" && argc == 4) return stat_time(argv[2], number(argv[3]));
    usage();
}
