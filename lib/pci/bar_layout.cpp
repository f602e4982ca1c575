// SPDX-License-Identifier: Apache-2.0
// Layout of the registers BAR and the shared memory BAR.
#include "pci/bar_layout.hpp"

#include <algorithm>
#include <bit>
#include <set>

#include "pci/virtio_pci_regs.hpp"

namespace vfsdax::pci {

namespace {

constexpr uint64_t kPage = 4096;
// Linux maps a shared memory region with memremap_pages, which works in 2 MiB subsections.
constexpr uint64_t kRegionAlignment = uint64_t{2} << 20;

uint64_t round_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) & ~(alignment - 1);
}

}  // namespace

RegistersLayout RegistersLayout::compute(uint16_t num_queues, uint32_t config_size,
                                         uint64_t table_bytes, uint64_t pba_bytes) {
    RegistersLayout layout;
    uint64_t next = 0;
    auto place = [&next](uint64_t length) {
        const BarRange range{next, length};
        next = round_up(next + std::max<uint64_t>(length, 1), kPage);
        return range;
    };
    layout.common = place(kCommonCfgLength);
    layout.isr = place(1);
    layout.device = place(config_size);
    layout.notify = place(uint64_t{num_queues} * kNotifyOffMultiplier);
    layout.msix_table = place(table_bytes);
    layout.msix_pba = place(pba_bytes);
    layout.bar_size = std::bit_ceil(next);
    return layout;
}

std::expected<SharedMemoryLayout, std::string> SharedMemoryLayout::compute(
    std::span<const virtio::SharedMemoryRegionInfo> regions) {
    SharedMemoryLayout layout;
    std::set<uint8_t> ids;
    uint64_t next = 0;
    for (const auto& region : regions) {
        if (region.size == 0) return std::unexpected("shared memory region of size 0");
        if (!ids.insert(region.id).second) return std::unexpected("duplicate shared memory id");
        const uint64_t offset = round_up(next, kRegionAlignment);
        if (region.size > (uint64_t{1} << 62) - offset) {
            return std::unexpected("shared memory regions too large for a BAR");
        }
        layout.regions.push_back({region.id, kSharedMemoryBar, offset, region.size});
        next = offset + region.size;
    }
    if (next != 0) layout.bar_size = std::bit_ceil(std::max(next, kPage));
    return layout;
}

}  // namespace vfsdax::pci
