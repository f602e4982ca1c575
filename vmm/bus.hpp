// SPDX-License-Identifier: Apache-2.0
// Bus: address ranges (port I/O or MMIO) dispatched to the device that claims them.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>

namespace vfsdax::vmm {

// Called from vCPU threads, possibly several at once: implementations lock what they share.
class BusDevice {
public:
    virtual ~BusDevice() = default;
    // `offset` is relative to the range the device was inserted at.
    virtual void read(uint64_t offset, std::span<std::byte> data) = 0;
    virtual void write(uint64_t offset, std::span<const std::byte> data) = 0;
};

enum class BusError { Overlap, Empty, NotFound };

class Bus {
public:
    // [base, base + size) for `device`; ranges never overlap.
    std::expected<void, BusError> insert(uint64_t base, uint64_t size,
                                         std::shared_ptr<BusDevice> device);
    std::expected<void, BusError> remove(uint64_t base);

    // false when no device claims the whole access (the caller decides what the guest sees).
    bool read(uint64_t addr, std::span<std::byte> data) const;
    bool write(uint64_t addr, std::span<const std::byte> data) const;

private:
    struct Range {
        uint64_t size;
        std::shared_ptr<BusDevice> device;
    };
    // The device and the offset for an access, or null; holds a reference so a device removed
    // meanwhile (a BAR moving) stays alive until its access returns.
    std::pair<std::shared_ptr<BusDevice>, uint64_t> find(uint64_t addr, uint64_t len) const;

    mutable std::shared_mutex mutex_;
    std::map<uint64_t, Range> ranges_;
};

}  // namespace vfsdax::vmm
