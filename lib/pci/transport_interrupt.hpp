// SPDX-License-Identifier: Apache-2.0
// TransportInterrupt: the virtio::Interrupt a PCI transport hands its device.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

#include "pci/interrupt_router.hpp"
#include "vfsdax/virtio/interrupt.hpp"

namespace vfsdax::pci {

// Lock-free apart from the router: device workers call it while a vCPU may hold the
// transport's register lock (for instance inside Device::reset(), waiting for them).
class TransportInterrupt final : public virtio::Interrupt {
public:
    explicit TransportInterrupt(InterruptRouter& router) : router_(router) {}

    void queue_used(uint16_t index) override;
    void config_changed() override;
    void needs_reset(std::string_view reason) override;
    // Told every reason needs_reset() gets. Set before the device runs (not synchronised).
    void set_needs_reset_listener(std::function<void(std::string_view)> listener) {
        needs_reset_listener_ = std::move(listener);
    }

    // Between DRIVER_OK and reset: only then does the device interrupt the driver.
    void set_live(bool live) { live_.store(live, std::memory_order_release); }
    bool live() const { return live_.load(std::memory_order_acquire); }

    uint8_t config_generation() const { return generation_.load(std::memory_order_acquire); }
    bool needs_reset_set() const { return needs_reset_.load(std::memory_order_acquire); }
    void clear_needs_reset() { needs_reset_.store(false, std::memory_order_release); }

private:
    InterruptRouter& router_;
    std::atomic<bool> live_{false};
    std::atomic<bool> needs_reset_{false};
    std::atomic<uint8_t> generation_{0};
    std::function<void(std::string_view)> needs_reset_listener_;
};

}  // namespace vfsdax::pci
