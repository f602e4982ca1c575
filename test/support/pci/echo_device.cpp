// SPDX-License-Identifier: Apache-2.0
// EchoDevice: echo requests through whatever queues the transport activated.
#include "pci/echo_device.hpp"

#include <algorithm>
#include <cstring>

namespace vfsdax::test {

EchoDevice::EchoDevice(Options options) : options_(std::move(options)) {}

void EchoDevice::read_config(uint32_t offset, std::span<std::byte> data) const {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = offset + i < config_.size() ? config_[offset + i] : std::byte{0};
    }
}

void EchoDevice::write_config(uint32_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (offset + i < config_.size()) config_[offset + i] = data[i];
    }
}

std::expected<void, std::string> EchoDevice::activate(
    const GuestMemory&, virtio::Interrupt& interrupt, uint64_t features,
    std::vector<std::unique_ptr<virtio::Queue>> queues) {
    std::lock_guard lock(mutex_);
    if (options_.activation_error) return std::unexpected(*options_.activation_error);
    interrupt_ = &interrupt;
    features_ = features;
    queues_ = std::move(queues);
    ++activations_;
    return {};
}

void EchoDevice::reset() {
    std::lock_guard lock(mutex_);
    interrupt_ = nullptr;
    features_ = 0;
    queues_.clear();
    ++resets_;
}

void EchoDevice::queue_notified(uint16_t index, uint32_t data) {
    {
        std::lock_guard lock(mutex_);
        kicks_.push_back({index, data});
    }
    serve(index);
}

void EchoDevice::serve(uint16_t index) {
    std::lock_guard lock(mutex_);
    if (interrupt_ == nullptr || index >= queues_.size() || !queues_[index]) return;
    virtio::Queue& queue = *queues_[index];
    virtio::DescriptorChain chain;
    std::vector<std::byte> buffer;
    bool pushed = false;
    while (true) {
        auto popped = queue.pop(chain);
        if (!popped) {
            interrupt_->needs_reset(virtio::to_string(popped.error()));
            return;
        }
        if (!*popped) break;
        virtio::ChainReader reader(chain);
        virtio::ChainWriter writer(chain);
        buffer.resize(std::min(reader.remaining(), writer.remaining()));
        if (!reader.read(buffer.data(), buffer.size()) ||
            !writer.write(buffer.data(), buffer.size()) ||
            !queue.push(chain, static_cast<uint32_t>(writer.bytes_written()))) {
            interrupt_->needs_reset("echo: a chain could not be served");
            return;
        }
        pushed = true;
    }
    if (pushed && queue.needs_interrupt()) interrupt_->queue_used(index);
}

void EchoDevice::reset_queue(uint16_t index) {
    std::lock_guard lock(mutex_);
    queue_resets_.push_back(index);
    if (index < queues_.size()) queues_[index].reset();
}

void EchoDevice::enable_queue(uint16_t index, std::unique_ptr<virtio::Queue> queue) {
    std::lock_guard lock(mutex_);
    if (index < queues_.size()) queues_[index] = std::move(queue);
}

void EchoDevice::change_config(uint8_t offset, uint8_t value) {
    {
        std::lock_guard lock(mutex_);
        config_.at(offset) = std::byte{value};
    }
    notify_config_changed();
}

void EchoDevice::break_device() {
    virtio::Interrupt* interrupt;
    {
        std::lock_guard lock(mutex_);
        interrupt = interrupt_;
    }
    if (interrupt != nullptr) interrupt->needs_reset("echo: broken on purpose");
}

bool EchoDevice::active() const {
    std::lock_guard lock(mutex_);
    return interrupt_ != nullptr;
}

uint64_t EchoDevice::features() const {
    std::lock_guard lock(mutex_);
    return features_;
}

unsigned EchoDevice::activations() const {
    std::lock_guard lock(mutex_);
    return activations_;
}

unsigned EchoDevice::resets() const {
    std::lock_guard lock(mutex_);
    return resets_;
}

bool EchoDevice::has_queue(uint16_t index) const {
    std::lock_guard lock(mutex_);
    return index < queues_.size() && queues_[index] != nullptr;
}

std::vector<EchoDevice::Kick> EchoDevice::kicks() const {
    std::lock_guard lock(mutex_);
    return kicks_;
}

std::vector<uint16_t> EchoDevice::queue_resets() const {
    std::lock_guard lock(mutex_);
    return queue_resets_;
}

}  // namespace vfsdax::test
