// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: random configuration-space, BAR, doorbell and device-side events at the
// virtio-pci transport, with a device that serves whatever queues the guest manages to set up.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/pci/virtio_pci_transport.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace {

using namespace vfsdax;

class NullSink final : public pci::InterruptSink {
public:
    void send_msi(uint64_t, uint32_t) override {}
    void set_intx(bool) override {}
};

// Completes every buffer with no bytes written, so ring engines run under the transport.
class DrainDevice final : public virtio::Device {
public:
    uint32_t device_type() const override { return VIRTIO_ID_FS; }
    uint64_t device_features() const override {
        return virtio::feature_bit(VIRTIO_F_VERSION_1) | virtio::kRingFeatures |
               virtio::feature_bit(VIRTIO_F_RING_RESET) |
               virtio::feature_bit(virtio::kFeatureNotificationData);
    }
    std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
    uint32_t config_size() const override { return sizeof(config_); }
    void read_config(uint32_t offset, std::span<std::byte> data) const override {
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = offset + i < sizeof(config_) ? config_[offset + i] : std::byte{0};
        }
    }
    void write_config(uint32_t offset, std::span<const std::byte> data) override {
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (offset + i < sizeof(config_)) config_[offset + i] = data[i];
        }
    }
    std::vector<virtio::SharedMemoryRegionInfo> shared_memory_regions() const override {
        return {{0, 1 << 21}};
    }
    std::expected<void, std::string> activate(
        const GuestMemory&, virtio::Interrupt& interrupt, uint64_t,
        std::vector<std::unique_ptr<virtio::Queue>> queues) override {
        interrupt_ = &interrupt;
        queues_ = std::move(queues);
        return {};
    }
    void reset() override {
        interrupt_ = nullptr;
        queues_.clear();
    }
    void queue_notified(uint16_t index, uint32_t) override {
        if (interrupt_ == nullptr || index >= queues_.size() || !queues_[index]) return;
        virtio::DescriptorChain chain;
        for (int budget = 0; budget < 32; ++budget) {
            auto popped = queues_[index]->pop(chain);
            if (!popped) {
                interrupt_->needs_reset(virtio::to_string(popped.error()));
                return;
            }
            if (!*popped || !queues_[index]->push(chain, 0)) break;
        }
        if (queues_[index]->needs_interrupt()) interrupt_->queue_used(index);
    }
    void reset_queue(uint16_t index) override {
        if (index < queues_.size()) queues_[index].reset();
    }
    void enable_queue(uint16_t index, std::unique_ptr<virtio::Queue> queue) override {
        if (index < queues_.size()) queues_[index] = std::move(queue);
    }
    void change_config() {
        config_[0] = std::byte(uint8_t(config_[0]) + 1);
        notify_config_changed();
    }

private:
    std::byte config_[8]{};
    virtio::Interrupt* interrupt_ = nullptr;
    std::vector<std::unique_ptr<virtio::Queue>> queues_;
};

// One operation: kind, width selector, offset, value (little-endian in the input).
struct Op {
    uint8_t kind;
    uint8_t width;
    uint32_t offset;
    uint64_t value;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    static std::vector<std::byte> ram(64 << 10);
    std::memset(ram.data(), 0, ram.size());
    GuestMemory memory;
    if (!memory.add_region(GuestAddress(0), ram.size(), ram.data())) return 0;
    NullSink sink;
    DrainDevice device;
    auto transport = pci::VirtioPciTransport::create(device, memory, sink);
    if (!transport) __builtin_trap();

    for (std::size_t at = 0; at + sizeof(Op) <= size; at += sizeof(Op)) {
        Op op;
        std::memcpy(&op, data + at, sizeof(Op));
        // Mostly natural widths, sometimes anything up to 16 bytes.
        const std::size_t width = op.width < 192 ? std::size_t{1} << (op.width % 4) : op.width % 17;
        std::byte bytes[16];
        std::memset(bytes, 0, sizeof(bytes));
        std::memcpy(bytes, &op.value, sizeof(op.value));
        const std::span<std::byte> span(bytes, width);
        switch (op.kind % 8) {
            case 0:
                transport->config_read(op.offset % 512, span);
                break;
            case 1:
                transport->config_write(op.offset % 512, span);
                break;
            case 2:
                transport->bar_read(op.kind >> 5, op.offset, span);
                break;
            case 3:
                transport->bar_write(op.kind >> 5, op.offset, span);
                break;
            // The common structure and doorbells are where state lives: aim there often.
            case 4:
                transport->bar_write(0, op.offset % 64, span);
                break;
            case 5:
                transport->notify(static_cast<uint16_t>(op.offset % 4),
                                  static_cast<uint32_t>(op.value));
                break;
            case 6:
                device.change_config();
                break;
            default:
                if (op.offset % 16 == 0) transport->reset();
                break;
        }
    }
    return 0;
}
