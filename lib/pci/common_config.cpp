// SPDX-License-Identifier: Apache-2.0
// CommonConfig: field decoding, feature negotiation, queue setup and the status state machine.
#include "pci/common_config.hpp"

#include <fmt/format.h>

#include <bit>
#include <memory>
#include <utility>

#include "vfsdax/virtio/queue.hpp"

namespace vfsdax::pci {

namespace {

using virtio::feature_bit;

// The width of the field at `offset`, 0 where no field starts (virtio 1.2, 4.1.4.3).
std::size_t field_width(uint32_t offset) {
    switch (offset) {
        case VIRTIO_PCI_COMMON_DFSELECT:
        case VIRTIO_PCI_COMMON_DF:
        case VIRTIO_PCI_COMMON_GFSELECT:
        case VIRTIO_PCI_COMMON_GF:
        case VIRTIO_PCI_COMMON_Q_DESCLO:
        case VIRTIO_PCI_COMMON_Q_DESCHI:
        case VIRTIO_PCI_COMMON_Q_AVAILLO:
        case VIRTIO_PCI_COMMON_Q_AVAILHI:
        case VIRTIO_PCI_COMMON_Q_USEDLO:
        case VIRTIO_PCI_COMMON_Q_USEDHI:
            return 4;
        case VIRTIO_PCI_COMMON_MSIX:
        case VIRTIO_PCI_COMMON_NUMQ:
        case VIRTIO_PCI_COMMON_Q_SELECT:
        case VIRTIO_PCI_COMMON_Q_SIZE:
        case VIRTIO_PCI_COMMON_Q_MSIX:
        case VIRTIO_PCI_COMMON_Q_ENABLE:
        case VIRTIO_PCI_COMMON_Q_NOFF:
        case VIRTIO_PCI_COMMON_Q_NDATA:
        case VIRTIO_PCI_COMMON_Q_RESET:
            return 2;
        case VIRTIO_PCI_COMMON_STATUS:
        case VIRTIO_PCI_COMMON_CFGGENERATION:
            return 1;
        default:
            return 0;
    }
}

uint32_t feature_word(uint64_t features, uint32_t select) {
    return select < 2 ? static_cast<uint32_t>(features >> (32 * select)) : 0;
}

uint32_t address_half(GuestAddress address, bool high) {
    return static_cast<uint32_t>(high ? address.raw() >> 32 : address.raw());
}

}  // namespace

CommonConfig::CommonConfig(virtio::Device& device, const GuestMemory& memory,
                           InterruptRouter& router, TransportInterrupt& interrupt)
    : device_(device),
      memory_(memory),
      router_(router),
      interrupt_(interrupt),
      offered_features_(device.device_features()),
      max_sizes_(device.queue_max_sizes()) {
    restore_defaults();
}

uint32_t CommonConfig::read(uint32_t offset, std::size_t width) const {
    if (width != field_width(offset)) return 0;
    switch (offset) {
        case VIRTIO_PCI_COMMON_DFSELECT:
            return device_feature_select_;
        case VIRTIO_PCI_COMMON_DF:
            return feature_word(offered_features_, device_feature_select_);
        case VIRTIO_PCI_COMMON_GFSELECT:
            return driver_feature_select_;
        case VIRTIO_PCI_COMMON_GF:
            return feature_word(driver_features_, driver_feature_select_);
        case VIRTIO_PCI_COMMON_MSIX:
            return router_.config_vector();
        case VIRTIO_PCI_COMMON_NUMQ:
            return num_queues();
        case VIRTIO_PCI_COMMON_STATUS:
            return status_ | (interrupt_.needs_reset_set() ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
        case VIRTIO_PCI_COMMON_CFGGENERATION:
            return interrupt_.config_generation();
        case VIRTIO_PCI_COMMON_Q_SELECT:
            return queue_select_;
        case VIRTIO_PCI_COMMON_Q_MSIX:
            return router_.queue_vector(queue_select_);
        default:
            break;
    }
    const virtio::QueueConfig* queue = selected_queue();
    if (queue == nullptr) return 0;  // size 0 tells the driver the queue does not exist
    switch (offset) {
        case VIRTIO_PCI_COMMON_Q_SIZE:
            return queue->size;
        case VIRTIO_PCI_COMMON_Q_ENABLE:
            return queue->ready ? 1 : 0;
        case VIRTIO_PCI_COMMON_Q_NOFF:
            return queue_select_;  // doorbell at queue * multiplier
        case VIRTIO_PCI_COMMON_Q_DESCLO:
            return address_half(queue->desc, false);
        case VIRTIO_PCI_COMMON_Q_DESCHI:
            return address_half(queue->desc, true);
        case VIRTIO_PCI_COMMON_Q_AVAILLO:
            return address_half(queue->driver, false);
        case VIRTIO_PCI_COMMON_Q_AVAILHI:
            return address_half(queue->driver, true);
        case VIRTIO_PCI_COMMON_Q_USEDLO:
            return address_half(queue->device, false);
        case VIRTIO_PCI_COMMON_Q_USEDHI:
            return address_half(queue->device, true);
        default:
            return 0;  // queue_notify_data (no NOTIF_CONFIG_DATA), queue_reset (synchronous)
    }
}

void CommonConfig::write(uint32_t offset, std::size_t width, uint32_t value) {
    if (width != field_width(offset)) return;
    const bool features_locked = (status_ & VIRTIO_CONFIG_S_FEATURES_OK) != 0;
    switch (offset) {
        case VIRTIO_PCI_COMMON_DFSELECT:
            device_feature_select_ = value;
            return;
        case VIRTIO_PCI_COMMON_GFSELECT:
            driver_feature_select_ = value;
            return;
        case VIRTIO_PCI_COMMON_GF:
            if (!features_locked && driver_feature_select_ < 2) {
                const unsigned shift = 32 * driver_feature_select_;
                driver_features_ &= ~(uint64_t{0xffffffff} << shift);
                driver_features_ |= uint64_t{value} << shift;
            }
            return;
        case VIRTIO_PCI_COMMON_MSIX:
            router_.set_config_vector(static_cast<uint16_t>(value));
            return;
        case VIRTIO_PCI_COMMON_STATUS:
            write_status(static_cast<uint8_t>(value));
            return;
        case VIRTIO_PCI_COMMON_Q_SELECT:
            queue_select_ = static_cast<uint16_t>(value);
            return;
        case VIRTIO_PCI_COMMON_Q_RESET:
            if (value == 1 && negotiated(VIRTIO_F_RING_RESET) && features_locked) {
                reset_queue(queue_select_);
            }
            return;
        default:
            break;
    }
    virtio::QueueConfig* queue = selected_queue();
    if (queue == nullptr) return;
    if (offset == VIRTIO_PCI_COMMON_Q_MSIX) {
        queue->msix_vector = router_.set_queue_vector(queue_select_, static_cast<uint16_t>(value));
        return;
    }
    if (offset == VIRTIO_PCI_COMMON_Q_ENABLE) {
        if (value == 1) enable_queue(queue_select_);
        return;  // writing 0 is not the driver's to do (virtio 1.2, 4.1.4.3.2)
    }
    // The ring layout is fixed once the queue is enabled.
    if (queue->ready) return;
    switch (offset) {
        case VIRTIO_PCI_COMMON_Q_SIZE:
            write_queue_size(*queue, static_cast<uint16_t>(value));
            break;
        case VIRTIO_PCI_COMMON_Q_DESCLO:
            set_address_half(queue->desc, false, value);
            break;
        case VIRTIO_PCI_COMMON_Q_DESCHI:
            set_address_half(queue->desc, true, value);
            break;
        case VIRTIO_PCI_COMMON_Q_AVAILLO:
            set_address_half(queue->driver, false, value);
            break;
        case VIRTIO_PCI_COMMON_Q_AVAILHI:
            set_address_half(queue->driver, true, value);
            break;
        case VIRTIO_PCI_COMMON_Q_USEDLO:
            set_address_half(queue->device, false, value);
            break;
        case VIRTIO_PCI_COMMON_Q_USEDHI:
            set_address_half(queue->device, true, value);
            break;
        default:
            break;  // read-only fields
    }
}

void CommonConfig::notify(uint16_t queue, uint32_t data) {
    if (!device_active_ || queue >= queues_.size() || !queues_[queue].ready) return;
    device_.queue_notified(queue, negotiated(virtio::kFeatureNotificationData) ? data : 0);
}

void CommonConfig::reset() {
    // Signals from workers still running are dropped from here on.
    interrupt_.set_live(false);
    device_.reset();
    router_.reset();
    interrupt_.clear_needs_reset();
    restore_defaults();
}

void CommonConfig::restore_defaults() {
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    status_ = 0;
    device_active_ = false;
    queue_select_ = 0;
    queues_.assign(max_sizes_.size(), virtio::QueueConfig{});
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        queues_[i].max_size = queues_[i].size = max_sizes_[i];
    }
}

bool CommonConfig::negotiated(unsigned feature) const {
    return (driver_features_ & feature_bit(feature)) != 0;
}

void CommonConfig::write_status(uint8_t value) {
    if (value == 0) {
        reset();
        return;
    }
    // The device owns NEEDS_RESET; the driver only ever adds bits, and after FAILED nothing.
    value &= static_cast<uint8_t>(~VIRTIO_CONFIG_S_NEEDS_RESET);
    if ((value & status_) != status_ || (status_ & VIRTIO_CONFIG_S_FAILED) != 0) return;
    const uint8_t added = value & static_cast<uint8_t>(~status_);
    if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
        const uint8_t needed = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
        // Left clear, FEATURES_OK tells the driver its feature set was refused.
        if ((value & needed) != needed || !features_acceptable()) {
            value &= static_cast<uint8_t>(~VIRTIO_CONFIG_S_FEATURES_OK);
        }
    }
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(value & VIRTIO_CONFIG_S_FEATURES_OK)) {
        value &= static_cast<uint8_t>(~VIRTIO_CONFIG_S_DRIVER_OK);
    }
    status_ = value;
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && (value & VIRTIO_CONFIG_S_DRIVER_OK)) {
        activate_device();
    }
}

bool CommonConfig::features_acceptable() const {
    return (driver_features_ & ~offered_features_) == 0 && negotiated(VIRTIO_F_VERSION_1);
}

void CommonConfig::activate_device() {
    // Live before the device starts: its workers may interrupt before activate() returns.
    interrupt_.set_live(true);
    std::vector<std::unique_ptr<virtio::Queue>> queues(queues_.size());
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        if (!queues_[i].ready) continue;
        auto queue = virtio::activate_queue(queues_[i], memory_, driver_features_);
        if (!queue) {
            interrupt_.needs_reset(
                fmt::format("queue {} at DRIVER_OK: {}", i, virtio::to_string(queue.error())));
            return;
        }
        queues[i] = std::move(*queue);
    }
    if (auto activated = device_.activate(memory_, interrupt_, driver_features_, std::move(queues));
        !activated) {
        interrupt_.needs_reset("the device refused to start: " + activated.error());
        return;
    }
    device_active_ = true;
}

void CommonConfig::write_queue_size(virtio::QueueConfig& queue, uint16_t size) {
    // Split rings index with a mask, so their size is a power of two; packed rings wrap by
    // compare and take any size up to the maximum (virtio 1.2, 2.7.10.2).
    const bool shape_ok = negotiated(VIRTIO_F_RING_PACKED) || std::has_single_bit(size);
    if (size != 0 && size <= queue.max_size && shape_ok) queue.size = size;
}

void CommonConfig::enable_queue(uint16_t index) {
    virtio::QueueConfig& queue = queues_[index];
    if (queue.ready) return;
    if (!(status_ & VIRTIO_CONFIG_S_DRIVER_OK)) {
        queue.ready = true;
        return;
    }
    // A live device takes a new queue only after a queue reset (VIRTIO_F_RING_RESET).
    if (!negotiated(VIRTIO_F_RING_RESET) || !device_active_) return;
    queue.ready = true;
    auto activated = virtio::activate_queue(queue, memory_, driver_features_);
    if (!activated) {
        interrupt_.needs_reset(fmt::format("queue {} enabled after a reset: {}", index,
                                           virtio::to_string(activated.error())));
        return;
    }
    device_.enable_queue(index, std::move(*activated));
}

void CommonConfig::reset_queue(uint16_t index) {
    if (index >= queues_.size()) return;
    if (queues_[index].ready && device_active_) device_.reset_queue(index);
    queues_[index] = virtio::QueueConfig{};
    queues_[index].max_size = queues_[index].size = max_sizes_[index];
    router_.set_queue_vector(index, VIRTIO_MSI_NO_VECTOR);
}

virtio::QueueConfig* CommonConfig::selected_queue() {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

const virtio::QueueConfig* CommonConfig::selected_queue() const {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

void CommonConfig::set_address_half(GuestAddress& address, bool high, uint32_t value) {
    const uint64_t raw = address.raw();
    address = GuestAddress(high ? (raw & 0xffffffffull) | (uint64_t{value} << 32)
                                : (raw & ~0xffffffffull) | value);
}

}  // namespace vfsdax::pci
