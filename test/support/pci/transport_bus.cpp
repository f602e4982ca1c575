// SPDX-License-Identifier: Apache-2.0
// TransportBus: address decoding over the transport's BARs, and the recording interrupt sink.
#include "pci/transport_bus.hpp"

#include <cstddef>
#include <cstring>
#include <utility>

namespace vfsdax::test {

void RecordingSink::send_msi(uint64_t address, uint32_t data) {
    std::lock_guard lock(mutex_);
    msis_.push_back({address, data});
}

void RecordingSink::set_intx(bool asserted) {
    std::lock_guard lock(mutex_);
    intx_ = asserted;
    ++intx_changes_;
}

std::vector<RecordingSink::Msi> RecordingSink::take_msis() {
    std::lock_guard lock(mutex_);
    return std::exchange(msis_, {});
}

bool RecordingSink::intx() const {
    std::lock_guard lock(mutex_);
    return intx_;
}

unsigned RecordingSink::intx_changes() const {
    std::lock_guard lock(mutex_);
    return intx_changes_;
}

uint32_t TransportBus::config_read(uint16_t offset, unsigned width) {
    std::byte bytes[4]{};
    transport_.config_read(offset, std::span(bytes, width));
    uint32_t value = 0;
    std::memcpy(&value, bytes, width);
    return value;
}

void TransportBus::config_write(uint16_t offset, unsigned width, uint32_t value) {
    std::byte bytes[4];
    std::memcpy(bytes, &value, sizeof(bytes));
    transport_.config_write(offset, std::span<const std::byte>(bytes, width));
}

bool TransportBus::route(uint64_t address, unsigned width, Target& target) const {
    for (const pci::BarInfo& bar : transport_.bars()) {
        if (!bar.address) continue;
        const uint64_t offset = address - *bar.address;
        if (address >= *bar.address && offset < bar.size && width <= bar.size - offset) {
            target = {bar.index, offset};
            return true;
        }
    }
    return false;
}

uint64_t TransportBus::mmio_read(uint64_t address, unsigned width) {
    Target target;
    if (!route(address, width, target)) {
        ++unclaimed_;
        return ~uint64_t{0};
    }
    std::byte bytes[8]{};
    transport_.bar_read(target.bar, target.offset, std::span(bytes, width));
    uint64_t value = 0;
    std::memcpy(&value, bytes, width);
    return value;
}

void TransportBus::mmio_write(uint64_t address, unsigned width, uint64_t value) {
    Target target;
    if (!route(address, width, target)) {
        ++unclaimed_;
        return;
    }
    std::byte bytes[8];
    std::memcpy(bytes, &value, sizeof(bytes));
    transport_.bar_write(target.bar, target.offset, std::span<const std::byte>(bytes, width));
}

}  // namespace vfsdax::test
