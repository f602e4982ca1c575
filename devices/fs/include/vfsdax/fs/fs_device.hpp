// SPDX-License-Identifier: Apache-2.0
// FsDevice: the virtio-fs device (type 26): config space, queue roles, and the worker pool.
#pragma once

#include <linux/virtio_fs.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/fs/file_system.hpp"
#include "vfsdax/fs/fuse_server.hpp"
#include "vfsdax/fs/mapper.hpp"
#include "vfsdax/virtio/device.hpp"

namespace vfsdax::fs {

// The device configuration layout (virtio 1.2, 5.11.4): the uapi struct, then notify_buf_size,
// which exists only when VIRTIO_FS_F_NOTIFICATION is offered (and is not in Linux's uapi).
struct FsConfig {
    virtio_fs_config base;
    uint32_t notify_buf_size;  // little-endian
};
static_assert(offsetof(FsConfig, notify_buf_size) == 40);

struct FsDeviceOptions {
    std::string tag;                  // 1..36 bytes of UTF-8, no NUL
    uint32_t num_request_queues = 1;  // 1..1024
    // Offer VIRTIO_FS_F_NOTIFICATION: queue 1 becomes the notification queue when the driver
    // takes it. Nothing is sent on it yet; the layout is ready for when something is.
    bool notification = false;
    uint32_t notify_buf_size = 0;  // reported in config space when `notification` is on
    uint16_t queue_size = 1024;    // largest size offered for every queue
    // Offer VIRTIO_F_RING_PACKED. Linux takes a packed ring whenever it is offered; off, every
    // queue is split.
    bool packed_ring = true;
    unsigned threads = 4;  // worker pool size, >= 1
    // Starts each worker thread running `body`; empty: std::thread on the calling thread.
    // Called when the driver activates the device, on whichever thread delivered that write (a
    // vCPU's, in a KVM VMM): a VMM whose threads carry different capabilities, signal masks or
    // seccomp filters creates the thread from one whose set the workers should inherit (the
    // lock waiter and the passthrough backend's requester threads are started by workers and
    // inherit it again). The body names its thread fs:TAG:N (N from 0; the tag cut to fit 15
    // bytes) first thing. May throw std::system_error, as std::thread does.
    std::function<std::thread(std::function<void()> body)> start_thread;
    FuseOptions fuse;
};

class VFSDAX_EXPORT FsDevice final : public virtio::Device {
public:
    // Checks the options; `fs` and `mapper` must outlive the device. With a mapper the device
    // declares its window as shared memory region 0 (VIRTIO_FS_SHMCAP_ID_CACHE); the caller
    // backs that region with the mapper's host window when attaching a transport.
    static std::expected<std::unique_ptr<FsDevice>, std::string> create(
        const FsDeviceOptions& options, FileSystem& fs, Mapper* mapper = nullptr);
    ~FsDevice() override;

    uint32_t device_type() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override;
    uint32_t config_size() const override;
    std::vector<virtio::SharedMemoryRegionInfo> shared_memory_regions() const override;
    void read_config(uint32_t offset, std::span<std::byte> data) const override;
    void write_config(uint32_t offset, std::span<const std::byte> data) override;
    std::expected<void, std::string> activate(
        const GuestMemory& memory, virtio::Interrupt& interrupt, uint64_t features,
        std::vector<std::unique_ptr<virtio::Queue>> queues) override;
    // Stops the workers, ends the FUSE session and empties the DAX window (every mapping goes),
    // so a driver that initialises the device again starts clean.
    void reset() override;
    void queue_notified(uint16_t index, uint32_t data) override;
    // Per served queue: the ring (Queue::describe()) and how many of its requests the FUSE
    // server holds.
    std::vector<std::string> describe() const override;

    // The max_write FUSE_INIT offers, after bounding it by what one chain can carry.
    uint32_t max_write() const { return server_.max_write(); }

    class Request;
    struct Slot;

private:
    VFSDAX_LOCAL FsDevice(const FsDeviceOptions& options, FileSystem& fs, Mapper* mapper);
    VFSDAX_LOCAL void post_drain(Slot& slot);
    // Serves up to a turn's worth of requests from the slot, then queues itself again.
    VFSDAX_LOCAL void drain(Slot& slot);
    // The next available request, or null when the ring is empty (kicks back on) or broken.
    VFSDAX_LOCAL std::unique_ptr<Request> pop(Slot& slot);
    VFSDAX_LOCAL void complete(Slot& slot, const virtio::DescriptorChain& chain, uint32_t written);
    VFSDAX_LOCAL void broken(const Slot& slot, virtio::QueueError error);

    const FsDeviceOptions options_;
    FsConfig config_{};
    Mapper* const mapper_;
    FuseServer server_;

    struct Pool;
    std::unique_ptr<Pool> pool_;  // exists while active
    std::vector<std::unique_ptr<Slot>> slots_;
    virtio::Interrupt* interrupt_ = nullptr;
    std::atomic<bool> reported_broken_{false};
    // Kicks may arrive on VMM threads while another resets or activates the device.
    mutable std::mutex state_mutex_;
};

}  // namespace vfsdax::fs
