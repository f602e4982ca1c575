// SPDX-License-Identifier: Apache-2.0
// Where the virtio structures, doorbells, MSI-X table and shared memory regions sit in BARs.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <vector>

#include "vfsdax/pci/bar_info.hpp"
#include "vfsdax/virtio/device.hpp"

namespace vfsdax::pci {

constexpr uint8_t kRegistersBar = 0;
constexpr uint8_t kSharedMemoryBar = 2;
// 4 bytes per queue: every doorbell its own address (one ioeventfd each), wide enough for a
// VIRTIO_F_NOTIFICATION_DATA write.
constexpr uint32_t kNotifyOffMultiplier = 4;

struct BarRange {
    uint64_t offset = 0;
    uint64_t length = 0;

    bool contains(uint64_t at, uint64_t width) const {
        return at >= offset && at - offset < length && width <= length - (at - offset);
    }
};

// BAR 0. Each structure starts on its own page, so a VMM can map or trap them separately.
struct RegistersLayout {
    BarRange common;
    BarRange isr;
    BarRange device;  // length 0 when the device has no configuration space
    BarRange notify;
    BarRange msix_table;
    BarRange msix_pba;
    uint64_t bar_size = 0;

    static RegistersLayout compute(uint16_t num_queues, uint32_t config_size, uint64_t table_bytes,
                                   uint64_t pba_bytes);
};

// BAR 2: the regions in order, each aligned so the guest can map it with large pages.
struct SharedMemoryLayout {
    std::vector<SharedMemoryPlacement> regions;
    uint64_t bar_size = 0;  // 0: no shared memory BAR

    static std::expected<SharedMemoryLayout, std::string> compute(
        std::span<const virtio::SharedMemoryRegionInfo> regions);
};

}  // namespace vfsdax::pci
