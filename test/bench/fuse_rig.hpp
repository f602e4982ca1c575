// SPDX-License-Identifier: Apache-2.0
// FuseRig: a passthrough share behind an FsDevice, driven through the split-ring driver model
// with kInFlight requests kept in flight, for the benchmarks that time FUSE requests.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuse/fuse_client.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "vfsdax/fs/passthrough.hpp"

namespace vfsdax::bench {

using namespace vfsdax::test;

constexpr uint16_t kQueueSize = 128;
constexpr uint16_t kInFlight = 64;

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
    void needs_reset(std::string_view reason) override {
        throw std::runtime_error("device asked for a reset: " + std::string(reason));
    }
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

class FuseRig {
public:
    // A share holding `file`, `file_size` bytes, served by an FsDevice whose request queue
    // carries replies of up to `max_read` bytes.
    FuseRig(uint64_t file_size, uint32_t max_read)
        : memory_((uint64_t{16} << 20) + 4 * uint64_t{kInFlight} * (max_read + 8192)),
          backend_(fs::make_passthrough({.root = dir_.path().string()}).value()) {
        std::ofstream(dir_ / "file") << std::string(file_size, 'b');
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
            clients_.push_back(std::make_unique<FuseQueueClient>(memory_, kQueueSize, features,
                                                                 kInFlight, 4096, max_read + 4096));
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
    ~FuseRig() { device_->reset(); }

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

}  // namespace vfsdax::bench
