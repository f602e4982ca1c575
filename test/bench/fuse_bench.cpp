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

#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax;
using namespace vfsdax::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint16_t kQueueSize = 128;
constexpr uint16_t kInFlight = 64;
constexpr uint32_t kReadSize = 128 * 1024;

// The guest's interrupt line as a VMM wires it, an eventfd (KVM's irqfd): a signal costs the
// device one write, as it would in a VMM. The driver sleeps on it as a halted vCPU would.
class IrqfdInterrupt final : public virtio::Interrupt {
public:
    IrqfdInterrupt() : fd_(eventfd(0, EFD_CLOEXEC)) {
        if (fd_ < 0) throw std::runtime_error("eventfd failed");
    }
    ~IrqfdInterrupt() override { close(fd_); }
    void queue_used(uint16_t) override {
        const uint64_t one = 1;
        (void)!write(fd_, &one, sizeof(one));
        signals_.fetch_add(1, std::memory_order_relaxed);
    }
    void config_changed() override {}
    void needs_reset() override { throw std::runtime_error("device asked for a reset"); }
    // Sleeps until signalled; a device that never signals is a bug the bench must not hide.
    void wait() {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) throw std::runtime_error("no interrupt within 10 s");
        uint64_t count = 0;
        (void)!read(fd_, &count, sizeof(count));
    }
    uint64_t signals() const { return signals_.load(std::memory_order_relaxed); }

private:
    int fd_;
    std::atomic<uint64_t> signals_{0};
};

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

class Bench {
public:
    Bench()
        : memory_(64 << 20),
          backend_(fs::make_passthrough({.root = dir_.path().string()}).value()) {
        std::ofstream(dir_ / "file") << std::string(1 << 20, 'b');
        fs::FsDeviceOptions options;
        options.tag = "bench";
        options.queue_size = kQueueSize;
        options.threads = 2;
        device_ = fs::FsDevice::create(options, *backend_).value();
        // EVENT_IDX, as Linux negotiates it whenever the device offers it.
        const uint64_t features =
            virtio::feature_bit(VIRTIO_F_VERSION_1) | virtio::feature_bit(VIRTIO_RING_F_EVENT_IDX);
        std::vector<std::unique_ptr<virtio::Queue>> queues;
        for (std::size_t i = 0; i < device_->queue_max_sizes().size(); ++i) {
            clients_.push_back(std::make_unique<FuseQueueClient>(
                memory_, kQueueSize, features, kInFlight, 4096, kReadSize + 4096));
            queues.push_back(virtio::activate_queue(clients_.back()->driver().config(),
                                                    memory_.memory(), features)
                                 .value());
        }
        if (!device_->activate(memory_.memory(), interrupt_, features, std::move(queues))) {
            throw std::runtime_error("activate failed");
        }
        fuse_init_in init{7, 37, 0, 0xffffffffu, 0, {}};
        run(1, [&](uint64_t u) { return fuse_request(FUSE_INIT, u, 0, {bytes_of(init)}); });
        file_node_ = lookup_reply("file").nodeid;
        fuse_open_in open{O_RDONLY, 0};
        fh_ = parse(run(1,
                        [&](uint64_t u) {
                            return fuse_request(FUSE_OPEN, u, file_node_, {bytes_of(open)});
                        }))
                  .as<fuse_open_out>()
                  .fh;
    }
    ~Bench() { device_->reset(); }

    const TempDir& dir() const { return dir_; }
    uint64_t kicks() const { return kicks_; }
    uint64_t interrupts() const { return interrupt_.signals(); }
    uint64_t file_node() const { return file_node_; }
    uint64_t fh() const { return fh_; }

    // Runs `ops` requests with kInFlight kept in flight; returns the last reply's bytes, in
    // guest memory until the next run.
    std::span<const std::byte> run(uint64_t ops,
                                   const std::function<Bytes(uint64_t unique)>& make) {
        FuseQueueClient& q = *clients_[1];
        uint64_t done = 0;
        std::span<const std::byte> last;
        while (done < ops) {
            while (done + q.in_flight() < ops && q.in_flight() < kInFlight) {
                q.add(make(++unique_));
            }
            if (q.publish()) {
                ++kicks_;
                device_->queue_notified(1, 0);
            }
            bool got = false;
            while (auto c = q.poll()) {
                ++done;
                got = true;
                last = c->written;
            }
            if (got || done == ops) continue;
            // Nothing used: ask for an interrupt once 3/4 of what is in flight is done, as
            // Linux's virtqueue_enable_cb_delayed() does, so the queue stays full and the
            // driver's wake-ups do not pace the device; sleep, then interrupts off again.
            if (!q.driver().enable_interrupts_delayed()) interrupt_.wait();
            q.driver().disable_interrupts();
        }
        return last;
    }
    // Replies arrive in any order: check the last one against its own unique.
    FuseReply parse(std::span<const std::byte> written) {
        fuse_out_header out{};
        if (written.size() >= sizeof(out)) std::memcpy(&out, written.data(), sizeof(out));
        if (out.unique == 0 || out.unique > unique_) throw std::runtime_error("unknown unique");
        FuseReply reply = parse_reply(written, out.unique);
        if (reply.error() != 0) throw std::runtime_error("request failed");
        return reply;
    }
    fuse_entry_out lookup_reply(const std::string& name) {
        return parse(run(1,
                         [&](uint64_t u) {
                             return fuse_request(FUSE_LOOKUP, u, FUSE_ROOT_ID, {cstr(name)});
                         }))
            .as<fuse_entry_out>();
    }

private:
    TempDir dir_;
    TestMemory memory_;
    std::unique_ptr<fs::FileSystem> backend_;
    std::unique_ptr<fs::FsDevice> device_;
    IrqfdInterrupt interrupt_;
    std::vector<std::unique_ptr<FuseQueueClient>> clients_;
    uint64_t unique_ = 0;
    uint64_t kicks_ = 0;
    uint64_t file_node_ = 0;
    uint64_t fh_ = 0;
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

void compare(const char* name, Bench& bench, uint64_t ops,
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
    Bench bench;
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
