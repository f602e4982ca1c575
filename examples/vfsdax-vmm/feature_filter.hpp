// FeatureFilter: a virtio::Device seen through a feature mask (packed=off withholds
// VIRTIO_F_RING_PACKED from a device that offers it), plus the shared memory regions the VMM
// backs for it when the device does not declare them itself (FsDevice and its DAX window).
#pragma once

#include "vfsdax/virtio/device.hpp"

namespace vfsdax::vmm_cli {

class FeatureFilter final : public virtio::Device {
public:
    FeatureFilter(virtio::Device& inner, uint64_t withheld,
                  std::vector<virtio::SharedMemoryRegionInfo> regions)
        : inner_(inner), withheld_(withheld), regions_(std::move(regions)) {
        inner_.set_config_change_listener([this] { notify_config_changed(); });
    }

    uint32_t device_type() const override { return inner_.device_type(); }
    uint64_t device_features() const override { return inner_.device_features() & ~withheld_; }
    std::vector<uint16_t> queue_max_sizes() const override { return inner_.queue_max_sizes(); }
    uint32_t config_size() const override { return inner_.config_size(); }
    void read_config(uint32_t offset, std::span<std::byte> data) const override {
        inner_.read_config(offset, data);
    }
    void write_config(uint32_t offset, std::span<const std::byte> data) override {
        inner_.write_config(offset, data);
    }
    std::vector<virtio::SharedMemoryRegionInfo> shared_memory_regions() const override {
        auto own = inner_.shared_memory_regions();
        return own.empty() ? regions_ : own;
    }
    std::expected<void, std::string> activate(
        const GuestMemory& memory, virtio::Interrupt& interrupt, uint64_t features,
        std::vector<std::unique_ptr<virtio::Queue>> queues) override {
        return inner_.activate(memory, interrupt, features, std::move(queues));
    }
    void reset() override { inner_.reset(); }
    void queue_notified(uint16_t index, uint32_t data) override {
        inner_.queue_notified(index, data);
    }
    void reset_queue(uint16_t index) override { inner_.reset_queue(index); }
    void enable_queue(uint16_t index, std::unique_ptr<virtio::Queue> queue) override {
        inner_.enable_queue(index, std::move(queue));
    }

private:
    virtio::Device& inner_;
    uint64_t withheld_;
    std::vector<virtio::SharedMemoryRegionInfo> regions_;
};

}  // namespace vfsdax::vmm_cli
