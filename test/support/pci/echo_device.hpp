// SPDX-License-Identifier: Apache-2.0
// EchoDevice: a test virtio device that copies each request's readable bytes to its writable part.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vfsdax/virtio/device.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::test {

// Serves requests on the kicking thread, so a test sees the reply as soon as its kick returns.
class EchoDevice final : public virtio::Device {
public:
    static constexpr uint64_t kDefaultFeatures =
        virtio::feature_bit(VIRTIO_F_VERSION_1) | virtio::kRingFeatures |
        virtio::feature_bit(VIRTIO_F_RING_RESET) |
        virtio::feature_bit(virtio::kFeatureNotificationData);
    static constexpr uint32_t kConfigSize = 8;

    struct Options {
        uint64_t features = kDefaultFeatures;
        std::vector<uint16_t> max_sizes{256, 256};
        std::vector<virtio::SharedMemoryRegionInfo> shared_memory{{0, 4 << 20}, {1, 64 << 10}};
        std::optional<std::string> activation_error;  // activate() fails with this
    };

    struct Kick {
        uint16_t queue;
        uint32_t data;
    };

    EchoDevice() : EchoDevice(Options{}) {}
    explicit EchoDevice(Options options);

    uint32_t device_type() const override { return VIRTIO_ID_FS; }
    uint64_t device_features() const override { return options_.features; }
    std::vector<uint16_t> queue_max_sizes() const override { return options_.max_sizes; }
    uint32_t config_size() const override { return kConfigSize; }
    void read_config(uint32_t offset, std::span<std::byte> data) const override;
    void write_config(uint32_t offset, std::span<const std::byte> data) override;
    std::vector<virtio::SharedMemoryRegionInfo> shared_memory_regions() const override {
        return options_.shared_memory;
    }
    std::expected<void, std::string> activate(
        const GuestMemory& memory, virtio::Interrupt& interrupt, uint64_t features,
        std::vector<std::unique_ptr<virtio::Queue>> queues) override;
    void reset() override;
    void queue_notified(uint16_t index, uint32_t data) override;
    void reset_queue(uint16_t index) override;
    void enable_queue(uint16_t index, std::unique_ptr<virtio::Queue> queue) override;

    // A device-side configuration change (a virtio-fs tag rename, say).
    void change_config(uint8_t offset, uint8_t value);
    // Makes the device report a fatal error, as a device whose queue broke would.
    void break_device();

    bool active() const;
    uint64_t features() const;
    unsigned activations() const;
    unsigned resets() const;
    bool has_queue(uint16_t index) const;
    std::vector<Kick> kicks() const;
    std::vector<uint16_t> queue_resets() const;

private:
    void serve(uint16_t index);

    const Options options_;
    mutable std::mutex mutex_;
    std::array<std::byte, kConfigSize> config_{};
    virtio::Interrupt* interrupt_ = nullptr;
    uint64_t features_ = 0;
    std::vector<std::unique_ptr<virtio::Queue>> queues_;
    unsigned activations_ = 0;
    unsigned resets_ = 0;
    std::vector<Kick> kicks_;
    std::vector<uint16_t> queue_resets_;
};

}  // namespace vfsdax::test
