// fuse_bench: GETATTR, LOOKUP and READ(128 KiB) through the split-ring driver model and FsDevice
// with 64 requests in flight, against the raw host syscalls they make, in one run. Prints each
// ratio as `NAME: R x` (device time per op / raw time per op).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
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

// The driver sleeps until the device signals, as a guest vCPU would; it suppresses
// interrupts (NO_INTERRUPT) while it is awake and polling.
class WakingInterrupt final : public virtio::Interrupt {
public:
    void queue_used(uint16_t) override {
        std::lock_guard lock(mutex_);
        ++count_;
        wake_.notify_one();
    }
    void config_changed() override {}
    void needs_reset() override { throw std::runtime_error("device asked for a reset"); }
    uint64_t count() {
        std::lock_guard lock(mutex_);
        return count_;
    }
    void wait_past(uint64_t seen) {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(1), [&] { return count_ != seen; });
    }

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    uint64_t count_ = 0;
};

double ns_per_op(Clock::duration d, uint64_t ops) {
    return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(ops);
}

// CPU time of the whole process (every device and driver thread), in ns: on a loaded host
// wall time also counts other processes' turns, CPU time does not.
double process_cpu_ns() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto ns = [](const timeval& t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

struct Cost {
    double wall_ns = 0;  // per op
    double cpu_ns = 0;   // per op
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
        // No EVENT_IDX: every completion interrupts, the simple, worst case for the device.
        const uint64_t features = virtio::feature_bit(VIRTIO_F_VERSION_1);
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
            if (q.publish()) device_->queue_notified(1, 0);
            bool got = false;
            while (auto c = q.poll()) {
                ++done;
                got = true;
                last = c->written;
            }
            if (got || done == ops) continue;
            // Nothing used: interrupts on (re-checking for a race), sleep, then off again.
            const uint64_t seen = interrupt_.count();
            if (!q.driver().enable_interrupts()) interrupt_.wait_past(seen);
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
    WakingInterrupt interrupt_;
    std::vector<std::unique_ptr<FuseQueueClient>> clients_;
    uint64_t unique_ = 0;
    uint64_t file_node_ = 0;
    uint64_t fh_ = 0;
};

template <typename F>
Cost measure(uint64_t ops, F&& body) {
    const double cpu = process_cpu_ns();
    const auto start = Clock::now();
    body();
    return {ns_per_op(Clock::now() - start, ops), (process_cpu_ns() - cpu) / ops};
}

template <typename F>
Cost time_raw(uint64_t ops, F&& op) {
    return measure(ops, [&] {
        for (uint64_t i = 0; i < ops; ++i) op();
    });
}

Cost time_device(Bench& bench, uint64_t ops, const std::function<Bytes(uint64_t)>& make) {
    std::span<const std::byte> last;
    const Cost cost = measure(ops, [&] { last = bench.run(ops, make); });
    bench.parse(last);  // the work really succeeded
    return cost;
}

// The ratio line is wall time, as the targets are stated; CPU time is printed beside it
// because wall time on a shared, loaded host is noise-prone.
void report(const char* name, Cost device, Cost raw) {
    std::printf("%s: device %.0f ns/op (cpu %.0f), raw %.0f ns/op (cpu %.0f), cpu ratio %.2f\n",
                name, device.wall_ns, device.cpu_ns, raw.wall_ns, raw.cpu_ns,
                device.cpu_ns / raw.cpu_ns);
    std::printf("%s: %.2f x\n", name, device.wall_ns / raw.wall_ns);
}

}  // namespace

int main() {
    Bench bench;
    const int dirfd = open(bench.dir().path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    const int pathfd = openat(dirfd, "file", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const int datafd = openat(dirfd, "file", O_RDONLY | O_CLOEXEC);
    if (dirfd < 0 || pathfd < 0 || datafd < 0) return 1;
    struct stat st;

    // GETATTR: the backend's fstatat on the inode's O_PATH fd.
    constexpr uint64_t kMetaOps = 100000;
    fuse_getattr_in getattr{};
    const uint64_t node = bench.file_node();
    time_device(bench, kMetaOps / 10, [&](uint64_t u) {  // warm-up
        return fuse_request(FUSE_GETATTR, u, node, {bytes_of(getattr)});
    });
    const Cost getattr_dev = time_device(bench, kMetaOps, [&](uint64_t u) {
        return fuse_request(FUSE_GETATTR, u, node, {bytes_of(getattr)});
    });
    const Cost getattr_raw =
        time_raw(kMetaOps, [&] { fstatat(pathfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW); });
    report("GETATTR", getattr_dev, getattr_raw);

    // LOOKUP: open the name O_PATH beneath the parent, stat it, close the duplicate fd.
    const Cost lookup_dev = time_device(bench, kMetaOps, [&](uint64_t u) {
        return fuse_request(FUSE_LOOKUP, u, FUSE_ROOT_ID, {cstr("file")});
    });
    const Cost lookup_raw = time_raw(kMetaOps, [&] {
        const int fd = openat(dirfd, "file", O_PATH | O_NOFOLLOW | O_CLOEXEC);
        fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        close(fd);
    });
    report("LOOKUP", lookup_dev, lookup_raw);

    // READ 128 KiB from the page cache.
    constexpr uint64_t kReadOps = 20000;
    std::vector<char> buffer(kReadSize);
    const uint64_t fh = bench.fh();
    auto read_request = [&](uint64_t u) {
        fuse_read_in read{};
        read.fh = fh;
        read.offset = (u % 8) * kReadSize;
        read.size = kReadSize;
        return fuse_request(FUSE_READ, u, node, {bytes_of(read)});
    };
    time_device(bench, kReadOps / 10, read_request);
    const Cost read_dev = time_device(bench, kReadOps, read_request);
    uint64_t i = 0;
    const Cost read_raw = time_raw(
        kReadOps, [&] { (void)pread(datafd, buffer.data(), kReadSize, (i++ % 8) * kReadSize); });
    report("READ_128K", read_dev, read_raw);

    close(datafd);
    close(pathfd);
    close(dirfd);
    return 0;
}
