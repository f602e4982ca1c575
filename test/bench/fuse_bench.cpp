// SPDX-License-Identifier: Apache-2.0
// fuse_bench: GETATTR, LOOKUP and READ(128 KiB) through the split-ring driver model and FsDevice
// with 64 requests in flight, against the raw host syscalls they make, in one run. Prints each
// ratio as `NAME: R x` (device wall time per op / raw wall time per op).
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>

#include "fuse_rig.hpp"

using namespace vfsdax;
using namespace vfsdax::test;
using namespace vfsdax::bench;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kReadSize = 128 * 1024;

double ns_per_op(Clock::duration d, uint64_t ops) {
    return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(ops);
}

double cpu_ns(clockid_t clock) {
    timespec t{};
    clock_gettime(clock, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

// Per op. Wall time is what the targets are stated in; CPU time does not count other
// processes' turns on a shared, loaded host. The device's CPU is the process's minus this
// thread's: the driver model runs here, and a real guest's driver runs on its own vCPUs.
struct Cost {
    double wall_ns = 0;
    double cpu_ns = 0;         // every thread of the process
    double driver_cpu_ns = 0;  // this thread
    double device_cpu_ns() const { return cpu_ns - driver_cpu_ns; }
};

template <typename F>
Cost measure(uint64_t ops, F&& body) {
    const double process = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    const double driver = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    const auto start = Clock::now();
    body();
    return {ns_per_op(Clock::now() - start, ops),
            (cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - process) / static_cast<double>(ops),
            (cpu_ns(CLOCK_THREAD_CPUTIME_ID) - driver) / static_cast<double>(ops)};
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

template <typename T, typename Field>
double median_of(const std::vector<T>& items, Field&& field) {
    std::vector<double> values;
    for (const T& item : items) values.push_back(field(item));
    return median(values);
}

// The load of other processes on a shared host comes and goes: each round times the device and
// then the raw syscalls back to back, so both sides of one ratio see the same load, and the
// figures printed are medians over the rounds.
constexpr int kRounds = 5;

struct Round {
    Cost device;
    Cost raw;
};

void compare(const char* name, FuseRig& bench, uint64_t ops,
             const std::function<Bytes(uint64_t unique)>& make, const std::function<void()>& raw) {
    bench.run(ops / 10, make);  // warm-up
    std::vector<Round> rounds;
    const uint64_t kicks = bench.kicks();
    const uint64_t interrupts = bench.interrupts();
    for (int r = 0; r < kRounds; ++r) {
        std::span<const std::byte> last;
        const Cost device = measure(ops, [&] { last = bench.run(ops, make); });
        bench.parse(last);  // the work really succeeded
        const Cost host = measure(ops, [&] {
            for (uint64_t i = 0; i < ops; ++i) raw();
        });
        rounds.push_back({device, host});
    }
    const double total = static_cast<double>(ops) * kRounds;
    // The raw side runs on this thread alone, so its process CPU time is the syscalls' cost.
    std::printf(
        "%s: device %.0f ns/op (cpu: device %.0f, driver %.0f; %.3f kicks, %.3f interrupts), "
        "raw %.0f ns/op (cpu %.0f), device cpu ratio %.2f\n",
        name, median_of(rounds, [](const Round& r) { return r.device.wall_ns; }),
        median_of(rounds, [](const Round& r) { return r.device.device_cpu_ns(); }),
        median_of(rounds, [](const Round& r) { return r.device.driver_cpu_ns; }),
        static_cast<double>(bench.kicks() - kicks) / total,
        static_cast<double>(bench.interrupts() - interrupts) / total,
        median_of(rounds, [](const Round& r) { return r.raw.wall_ns; }),
        median_of(rounds, [](const Round& r) { return r.raw.cpu_ns; }),
        median_of(rounds, [](const Round& r) { return r.device.device_cpu_ns() / r.raw.cpu_ns; }));
    std::printf("%s: %.2f x\n", name,
                median_of(rounds, [](const Round& r) { return r.device.wall_ns / r.raw.wall_ns; }));
}

}  // namespace

int main() {
    FuseRig bench(1 << 20, kReadSize);
    const int dirfd = open(bench.dir().path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    const int pathfd = openat(dirfd, "file", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const int datafd = openat(dirfd, "file", O_RDONLY | O_CLOEXEC);
    if (dirfd < 0 || pathfd < 0 || datafd < 0) return 1;
    struct stat st;
    const uint64_t node = bench.file_node();
    constexpr uint64_t kMetaOps = 20000;  // per round

    // GETATTR: the backend's fstatat on the inode's O_PATH fd.
    const fuse_getattr_in getattr{};
    compare(
        "GETATTR", bench, kMetaOps,
        [&](uint64_t u) { return fuse_request(FUSE_GETATTR, u, node, {bytes_of(getattr)}); },
        [&] { fstatat(pathfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); });

    // LOOKUP: the backend opens the name O_PATH beneath the parent with openat2, reads its
    // inode key (dev, ino, mount id) with statx, stats it, and closes the duplicate fd.
    open_how how{};
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    struct statx key;
    compare(
        "LOOKUP", bench, kMetaOps,
        [&](uint64_t u) { return fuse_request(FUSE_LOOKUP, u, FUSE_ROOT_ID, {cstr("file")}); },
        [&] {
            const int fd = static_cast<int>(syscall(SYS_openat2, dirfd, "file", &how, sizeof(how)));
            statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
                  STATX_TYPE | STATX_INO | STATX_MNT_ID, &key);
            fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
            close(fd);
        });

    // READ 128 KiB from the page cache. The device reads into the reply buffers of the
    // kInFlight requests in turn; the raw reads cycle over as many buffers, so both sides copy
    // into the same amount of memory.
    constexpr uint64_t kReadOps = 4000;  // per round
    std::vector<std::vector<char>> buffers(kInFlight, std::vector<char>(kReadSize));
    const uint64_t fh = bench.fh();
    uint64_t i = 0;
    compare(
        "READ_128K", bench, kReadOps,
        [&](uint64_t u) {
            fuse_read_in read{};
            read.fh = fh;
            read.offset = (u % 8) * kReadSize;
            read.size = kReadSize;
            return fuse_request(FUSE_READ, u, node, {bytes_of(read)});
        },
        [&] {
            (void)pread(datafd, buffers[i % kInFlight].data(), kReadSize, (i % 8) * kReadSize);
            ++i;
        });

    close(datafd);
    close(pathfd);
    close(dirfd);
    return 0;
}
