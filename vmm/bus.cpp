// SPDX-License-Identifier: Apache-2.0
// Range lookup for the PIO and MMIO buses.
#include "bus.hpp"

#include <mutex>

namespace vfsdax::vmm {

std::expected<void, BusError> Bus::insert(uint64_t base, uint64_t size,
                                          std::shared_ptr<BusDevice> device) {
    if (size == 0 || base + size < base) return std::unexpected(BusError::Empty);
    std::unique_lock lock(mutex_);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + size)
        return std::unexpected(BusError::Overlap);
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.size > base) return std::unexpected(BusError::Overlap);
    }
    ranges_.emplace(base, Range{size, std::move(device)});
    return {};
}

std::expected<void, BusError> Bus::remove(uint64_t base) {
    std::unique_lock lock(mutex_);
    if (ranges_.erase(base) == 0) return std::unexpected(BusError::NotFound);
    return {};
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::find(uint64_t addr, uint64_t len) const {
    std::shared_lock lock(mutex_);
    auto it = ranges_.upper_bound(addr);
    if (it == ranges_.begin()) return {};
    --it;
    const uint64_t offset = addr - it->first;
    if (offset >= it->second.size || len > it->second.size - offset) return {};
    return {it->second.device, offset};
}

bool Bus::read(uint64_t addr, std::span<std::byte> data) const {
    auto [device, offset] = find(addr, data.size());
    if (!device) return false;
    device->read(offset, data);
    return true;
}

bool Bus::write(uint64_t addr, std::span<const std::byte> data) const {
    auto [device, offset] = find(addr, data.size());
    if (!device) return false;
    device->write(offset, data);
    return true;
}

}  // namespace vfsdax::vmm
