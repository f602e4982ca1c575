// SPDX-License-Identifier: Apache-2.0
// FsDevice: config space, queue roles, popping on kicks and replying on the same queue.
#include "vfsdax/fs/fs_device.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <optional>
#include <thread>

#include "device/options_check.hpp"
#include "util/thread_name.hpp"

namespace vfsdax::fs {

namespace {
// Linux reserves this many descriptors of a chain for headers (FUSE_HEADER_OVERHEAD).
constexpr uint32_t kHeaderDescriptors = 4;
constexpr uint32_t kPageSize = 4096;
// Requests a worker serves from one queue in a row before the pool's other jobs (other
// queues' drains) get their turn: few enough that hiprio never waits long behind a full
// request queue, enough that a busy queue costs one post per turn rather than per request.
constexpr unsigned kRequestsPerTurn = 16;

FuseOptions bounded_fuse_options(const FsDeviceOptions& options) {
    FuseOptions fuse = options.fuse;
    // One page per descriptor: a longer payload could not travel in one chain.
    const uint32_t chain_pages =
        std::max<uint32_t>(options.queue_size, kHeaderDescriptors + 1) - kHeaderDescriptors;
    fuse.max_write = std::min<uint64_t>(fuse.max_write, uint64_t{chain_pages} * kPageSize);
    if (fuse.thread_tag.empty()) fuse.thread_tag = options.tag;
    return fuse;
}
}  // namespace

// One queue the device serves, with the lock that serialises its pops and pushes.
struct VFSDAX_LOCAL FsDevice::Slot {
    uint16_t index = 0;
    std::unique_ptr<virtio::Queue> queue;
    std::mutex mutex;
    std::atomic<bool> drain_posted{false};
    std::atomic<unsigned> in_server{0};  // popped, not yet completed
};

// A popped chain on its way through the server and back onto its queue.
class VFSDAX_LOCAL FsDevice::Request final : public FuseRequest {
public:
    Request(FsDevice& device, Slot& slot) : device_(device), slot_(slot) {}
    void start() {
        reader_.emplace(chain_);
        writer_.emplace(chain_);
    }
    virtio::DescriptorChain& chain() { return chain_; }
    virtio::ChainReader& reader() override { return *reader_; }
    virtio::ChainWriter& writer() override { return *writer_; }
    void complete(uint32_t written) override { device_.complete(slot_, chain_, written); }

private:
    FsDevice& device_;
    Slot& slot_;
    virtio::DescriptorChain chain_;
    std::optional<virtio::ChainReader> reader_;
    std::optional<virtio::ChainWriter> writer_;
};

struct VFSDAX_LOCAL FsDevice::Pool {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{
        io.get_executor()};
    std::vector<std::thread> threads;
};

std::expected<std::unique_ptr<FsDevice>, std::string> FsDevice::create(
    const FsDeviceOptions& options, FileSystem& fs, Mapper* mapper) {
    if (auto r = device::check_options(options); !r) return std::unexpected(r.error());
    return std::unique_ptr<FsDevice>(new FsDevice(options, fs, mapper));
}

FsDevice::FsDevice(const FsDeviceOptions& options, FileSystem& fs, Mapper* mapper)
    : options_(options), mapper_(mapper), server_(fs, bounded_fuse_options(options), mapper) {
    std::memcpy(config_.base.tag, options.tag.data(), options.tag.size());
    config_.base.num_request_queues = htole32(options.num_request_queues);
    config_.notify_buf_size = htole32(options.notify_buf_size);
}

FsDevice::~FsDevice() {
    reset();
}

uint32_t FsDevice::device_type() const {
    return VIRTIO_ID_FS;
}

uint64_t FsDevice::device_features() const {
    uint64_t features = virtio::feature_bit(VIRTIO_F_VERSION_1) | virtio::kRingFeatures;
    if (options_.notification) features |= virtio::feature_bit(virtio::kFsFeatureNotification);
    if (!options_.packed_ring) features &= ~virtio::feature_bit(VIRTIO_F_RING_PACKED);
    return features;
}

std::vector<uint16_t> FsDevice::queue_max_sizes() const {
    // hiprio, the notification queue if offered, then the request queues.
    const std::size_t count = 1 + (options_.notification ? 1 : 0) + options_.num_request_queues;
    return std::vector<uint16_t>(count, options_.queue_size);
}

uint32_t FsDevice::config_size() const {
    return options_.notification ? sizeof(FsConfig) : sizeof(virtio_fs_config);
}

std::vector<virtio::SharedMemoryRegionInfo> FsDevice::shared_memory_regions() const {
    if (!mapper_) return {};
    return {{VIRTIO_FS_SHMCAP_ID_CACHE, mapper_->window_size()}};
}

void FsDevice::read_config(uint32_t offset, std::span<std::byte> data) const {
    std::fill(data.begin(), data.end(), std::byte{0});
    const uint32_t size = config_size();
    if (offset >= size) return;
    const std::size_t n = std::min<std::size_t>(data.size(), size - offset);
    std::memcpy(data.data(), reinterpret_cast<const std::byte*>(&config_) + offset, n);
}

void FsDevice::write_config(uint32_t, std::span<const std::byte>) {
    // Every virtio-fs config field is read-only for the driver.
}

std::expected<void, std::string> FsDevice::activate(
    const GuestMemory&, virtio::Interrupt& interrupt, uint64_t features,
    std::vector<std::unique_ptr<virtio::Queue>> queues) {
    std::lock_guard state(state_mutex_);
    if (pool_) return std::unexpected(std::string("virtio-fs: activated twice without reset"));
    if (queues.size() != queue_max_sizes().size()) {
        return std::unexpected(std::string("virtio-fs: wrong number of queues"));
    }
    // Queue roles depend on what was negotiated (virtio 1.2, 5.11.2).
    const bool notification = (features & virtio::feature_bit(virtio::kFsFeatureNotification)) != 0;
    const std::size_t first_request = notification ? 2 : 1;
    interrupt_ = &interrupt;
    reported_broken_ = false;
    slots_.clear();
    for (std::size_t i = 0; i < queues.size(); ++i) {
        const bool served =
            i == 0 || (i >= first_request && i < first_request + options_.num_request_queues);
        auto slot = std::make_unique<Slot>();
        slot->index = static_cast<uint16_t>(i);
        // The notification queue is kept for its own issue's machinery; never popped here.
        if (served) slot->queue = std::move(queues[i]);
        slots_.push_back(std::move(slot));
    }
    pool_ = std::make_unique<Pool>();
    // Buffers made available before DRIVER_OK are served without waiting for a kick, queue by
    // queue in index order: posted before any worker runs, so no queue overtakes another.
    for (auto& slot : slots_) {
        if (slot->queue) post_drain(*slot);
    }
    for (unsigned i = 0; i < options_.threads; ++i) {
        // The body names its thread: whatever thread a factory creates it on, and whatever
        // name that thread had, ps and seccomp's audit records (comm=) show which worker.
        std::function<void()> body = [io = &pool_->io,
                                      name = thread_name(options_.tag, std::to_string(i))] {
            name_this_thread(name);
            io->run();
        };
        pool_->threads.push_back(options_.start_thread ? options_.start_thread(std::move(body))
                                                       : std::thread(std::move(body)));
    }
    return {};
}

void FsDevice::reset() {
    std::lock_guard state(state_mutex_);
    if (pool_) {
        // In-flight handlers finish; queued ones are dropped with their chains.
        pool_->io.stop();
        for (auto& t : pool_->threads) t.join();
        pool_.reset();
        server_.reset();
    }
    slots_.clear();
    interrupt_ = nullptr;
}

void FsDevice::queue_notified(uint16_t index, uint32_t) {
    std::lock_guard state(state_mutex_);
    if (!pool_ || index >= slots_.size() || !slots_[index]->queue) return;
    post_drain(*slots_[index]);
}

void FsDevice::post_drain(Slot& slot) {
    // One drain pending per queue is enough: it pops everything available when it runs.
    if (slot.drain_posted.exchange(true)) return;
    boost::asio::post(pool_->io, [this, &slot] { drain(slot); });
}

void FsDevice::drain(Slot& slot) {
    slot.drain_posted = false;
    // A reset stops the pool: the turn ends with the request in hand.
    for (unsigned served = 0; served < kRequestsPerTurn && !pool_->io.stopped(); ++served) {
        auto request = pop(slot);
        if (!request) return;
        // Leader/follower: an idle worker joins while this one serves. When every worker is
        // busy the drain stays queued, each worker loops here, and a full ring is served
        // with no post or wake-up per request.
        post_drain(slot);
        server_.handle(std::move(request));
    }
    // Other queues' drains waiting in the pool get their turn before this one goes on.
    post_drain(slot);
}

std::unique_ptr<FsDevice::Request> FsDevice::pop(Slot& slot) {
    auto request = std::make_unique<Request>(*this, slot);
    {
        std::lock_guard lock(slot.mutex);
        virtio::Queue& queue = *slot.queue;
        // Kicks stay off while workers keep popping; back on only once the ring looks empty.
        queue.disable_notifications();
        for (;;) {
            auto popped = queue.pop(request->chain());
            if (!popped) {
                broken(slot, popped.error());
                return nullptr;
            }
            if (*popped) break;
            auto again = queue.enable_notifications();
            if (!again) {
                broken(slot, again.error());
                return nullptr;
            }
            if (!*again) return nullptr;
            queue.disable_notifications();
        }
    }
    ++slot.in_server;
    request->start();
    return request;
}

void FsDevice::complete(Slot& slot, const virtio::DescriptorChain& chain, uint32_t written) {
    bool notify = false;
    {
        std::lock_guard lock(slot.mutex);
        --slot.in_server;
        auto pushed = slot.queue->push_and_needs_interrupt(chain, written);
        if (!pushed) return broken(slot, pushed.error());
        notify = *pushed;
    }
    if (notify) interrupt_->queue_used(slot.index);
}

std::vector<std::string> FsDevice::describe() const {
    std::lock_guard state(state_mutex_);
    if (!pool_) return {"virtio-fs: not active"};
    std::vector<std::string> lines;
    for (const auto& slot : slots_) {
        if (!slot->queue) continue;
        std::lock_guard lock(slot->mutex);
        lines.push_back(fmt::format("queue {}: {}; {} requests in the FUSE server", slot->index,
                                    slot->queue->describe(), slot->in_server.load()));
    }
    return lines;
}

void FsDevice::broken(const Slot& slot, virtio::QueueError error) {
    if (!reported_broken_.exchange(true)) {
        interrupt_->needs_reset(fmt::format("queue {}: {}", slot.index, virtio::to_string(error)));
    }
}

}  // namespace vfsdax::fs
