// SPDX-License-Identifier: Apache-2.0
// What the owner of a PCI function needs to know about its BARs, notify addresses and windows.
#pragma once

#include <cstdint>
#include <optional>

namespace vfsdax::pci {

struct BarInfo {
    uint8_t index = 0;  // BAR register index (a 64-bit BAR also uses index + 1)
    uint64_t size = 0;  // a power of two
    bool is_64bit = false;
    bool prefetchable = false;
    // Where the guest placed it; none while memory decoding is off or the BAR is unprogrammed.
    std::optional<uint64_t> address;

    bool operator==(const BarInfo&) const = default;
};

// A doorbell: a driver write here kicks `queue`. A VMM binds it to an ioeventfd.
struct NotifyAddress {
    uint8_t bar = 0;
    uint64_t offset = 0;  // within the BAR
    uint16_t queue = 0;
};

// Where one device shared memory region sits inside the shared memory BAR: the VMM maps the
// device's host memory for region `id` at the BAR's address + `offset`.
struct SharedMemoryPlacement {
    uint8_t id = 0;
    uint8_t bar = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
};

}  // namespace vfsdax::pci
