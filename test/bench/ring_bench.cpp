// SPDX-License-Identifier: Apache-2.0
// ring_bench: device-side cost of one chain (pop + push + interrupt decision) on split and
// packed queues, for 1-, 2- and 4-descriptor chains.
//
// The stable figure is instructions per chain, counted by valgrind's callgrind: the bench
// re-executes itself under
//     valgrind --tool=callgrind --collect-atstart=no --toggle-collect=ring_bench_device_step
// so only ring_bench_device_step() (the device's pop and push_and_needs_interrupt, as the fs
// device calls them, plus its own call overhead) is counted; the driver model's refill and
// used-ring collection run outside it. Each configuration runs twice (N1 and N2 chains) and the
// figure is (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels warm-up (the chain's first allocation) and
// any fixed cost. A native run then reports chains per second for the whole loop (driver model
// included).
//
// Usage: ring_bench                      all figures
//        ring_bench --inner L D N        (internal) run N chains of D descriptors, layout L
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "split/split_driver.hpp"
#include "test_memory.hpp"
#include "vfsdax/virtio/queue.hpp"

#if __has_include("packed/packed_driver.hpp")
#include "packed/packed_driver.hpp"
#define RING_BENCH_HAVE_PACKED_DRIVER 1
#endif

extern char** environ;

using namespace vfsdax;
using namespace vfsdax::virtio;

namespace {

constexpr uint16_t kQueueSize = 256;
// Issue #2: instructions per 2-descriptor chain, on each layout.
constexpr double kTargetInstructions = 150;
// What a Linux guest negotiates with a device offering both (VERSION_1, EVENT_IDX, INDIRECT).
constexpr uint64_t kFeatures = feature_bit(VIRTIO_F_VERSION_1) |
                               feature_bit(VIRTIO_RING_F_EVENT_IDX) |
                               feature_bit(VIRTIO_RING_F_INDIRECT_DESC);

}  // namespace

// The counted part: everything the device does for one chain. Not inlined, not cloned, so
// callgrind's --toggle-collect can find it by this name.
#if defined(__clang__)
#define RING_BENCH_OPAQUE __attribute__((noinline))
#else
#define RING_BENCH_OPAQUE __attribute__((noinline, noipa))
#endif
extern "C" RING_BENCH_OPAQUE bool ring_bench_device_step(Queue& queue, DescriptorChain& chain) {
    auto popped = queue.pop(chain);
    if (!popped || !*popped) [[unlikely]]
        return false;
    auto notify =
        queue.push_and_needs_interrupt(chain, static_cast<uint32_t>(chain.writable_bytes()));
    return notify && *notify;
}

namespace {

struct Rig {
    virtual ~Rig() = default;
    // Driver side: one chain of `descs` descriptors made available.
    virtual void refill() = 0;
    // Driver side: collect the used chain.
    virtual void collect() = 0;
    Queue& queue() { return *queue_; }

    std::unique_ptr<Queue> queue_;
};

// Chain shapes: 1 = one readable; 2 = readable + writable; 4 = 2 readable + 2 writable.
template <typename Driver, typename Buffer>
struct DriverRig : Rig {
    DriverRig(int descs, uint64_t features) : mem(4 << 20), drv(mem, kQueueSize, features) {
        const int readable_count = descs == 1 ? 1 : descs / 2;
        for (int i = 0; i < descs; ++i) {
            const auto b = drv.alloc_buffer(512);
            (i < readable_count ? readable : writable).push_back(Buffer{b.addr, b.len});
        }
    }
    void refill() override {
        if (!drv.add(readable, writable)) std::abort();
        drv.publish();
        (void)drv.kick_needed();
    }
    void collect() override {
        if (!drv.get_used()) std::abort();
    }

    test::TestMemory mem;
    Driver drv;
    std::vector<Buffer> readable, writable;
};

std::unique_ptr<Rig> make_rig(const std::string& layout, int descs) {
    std::unique_ptr<Rig> rig;
    uint64_t features = kFeatures;
    if (layout == "split") {
        auto r =
            std::make_unique<DriverRig<test::SplitDriver, test::DriverBuffer>>(descs, kFeatures);
        auto q = activate_queue(r->drv.config(), r->mem.memory(), features);
        if (!q) return nullptr;
        r->queue_ = std::move(*q);
        rig = std::move(r);
    }
#ifdef RING_BENCH_HAVE_PACKED_DRIVER
    if (layout == "packed") {
        auto r =
            std::make_unique<DriverRig<test::PackedDriver, test::DriverBuffer>>(descs, kFeatures);
        auto q = activate_queue(r->drv.config(), r->mem.memory(), r->drv.features());
        if (!q) return nullptr;
        r->queue_ = std::move(*q);
        rig = std::move(r);
    }
#endif
    return rig;
}

// Runs `chains` chains; false when the device misbehaved.
bool run_chains(Rig& rig, long chains) {
    DescriptorChain chain;
    for (long i = 0; i < chains; ++i) {
        rig.refill();
        ring_bench_device_step(rig.queue(), chain);
        if (rig.queue().broken()) return false;
        rig.collect();
    }
    return true;
}

int inner(const std::string& layout, int descs, long chains) {
    auto rig = make_rig(layout, descs);
    if (!rig) return 3;
    return run_chains(*rig, chains) ? 0 : 4;
}

std::string self_path() {
    std::array<char, 4096> buf{};
    const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
    return n > 0 ? std::string(buf.data(), n) : std::string();
}

std::optional<std::string> find_in_path(const char* name) {
    const char* path = std::getenv("PATH");
    if (!path) return std::nullopt;
    std::string p(path);
    std::size_t start = 0;
    while (start <= p.size()) {
        const std::size_t end = std::min(p.find(':', start), p.size());
        const std::string candidate = p.substr(start, end - start) + "/" + name;
        if (access(candidate.c_str(), X_OK) == 0) return candidate;
        start = end + 1;
    }
    return std::nullopt;
}

int spawn_wait(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Instructions callgrind collected in one inner run ("totals:" line of its output file).
std::optional<double> callgrind_ir(const std::string& valgrind, const std::string& layout,
                                   int descs, long chains) {
    char tmpl[] = "/tmp/ring_bench_callgrind_XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) return std::nullopt;
    close(fd);
    const std::string out = tmpl;
    const int rc =
        spawn_wait({valgrind, "--tool=callgrind", "--collect-atstart=no",
                    "--toggle-collect=ring_bench_device_step", "--callgrind-out-file=" + out,
                    self_path(), "--inner", layout, std::to_string(descs), std::to_string(chains)});
    std::optional<double> total;
    if (rc == 0) {
        std::ifstream in(out);
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind("totals:", 0) == 0 || (!total && line.rfind("summary:", 0) == 0)) {
                total = std::strtod(line.c_str() + line.find(':') + 1, nullptr);
            }
        }
    }
    std::remove(out.c_str());
    return total;
}

double native_chains_per_second(const std::string& layout, int descs) {
    auto rig = make_rig(layout, descs);
    if (!rig) return 0;
    run_chains(*rig, 100000);  // warm up
    const long chains = 1000000;
    const auto t0 = std::chrono::steady_clock::now();
    if (!run_chains(*rig, chains)) return 0;
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    return chains / dt.count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 5 && std::strcmp(argv[1], "--inner") == 0) {
        return inner(argv[2], std::atoi(argv[3]), std::atol(argv[4]));
    }

    std::vector<std::string> layouts{"split"};
    if (make_rig("packed", 1)) {
        layouts.push_back("packed");
    } else {
        std::printf("packed: not measured (no packed driver model or engine in this build)\n");
    }
    const int shapes[] = {1, 2, 4};

    const auto valgrind = find_in_path("valgrind");
    if (!valgrind) {
        std::printf("valgrind not found: instruction counts skipped, native figures only\n");
    } else {
        // Counts are deterministic: two short runs give the exact marginal cost.
        constexpr long kN1 = 5000, kN2 = 25000;
        for (const auto& layout : layouts) {
            for (int descs : shapes) {
                const auto a = callgrind_ir(*valgrind, layout, descs, kN1);
                const auto b = callgrind_ir(*valgrind, layout, descs, kN2);
                if (!a || !b) {
                    std::printf("%s %d-desc: callgrind run failed\n", layout.c_str(), descs);
                    continue;
                }
                const double per_chain = (*b - *a) / double(kN2 - kN1);
                std::printf("%s %d-desc: %.0f instructions/chain\n", layout.c_str(), descs,
                            per_chain);
                if (descs == 2) {
                    std::printf("%s target <= %.0f: %s\n", layout.c_str(), kTargetInstructions,
                                per_chain <= kTargetInstructions ? "met" : "missed");
                }
                std::fflush(stdout);
            }
        }
    }
    for (const auto& layout : layouts) {
        for (int descs : shapes) {
            std::printf(
                "%s %d-desc: %.2f M chains/s native (driver model refill and collect included)\n",
                layout.c_str(), descs, native_chains_per_second(layout, descs) / 1e6);
            std::fflush(stdout);
        }
    }
    return 0;
}
