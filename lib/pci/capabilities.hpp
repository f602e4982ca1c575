// SPDX-License-Identifier: Apache-2.0
// The capability list of a virtio-pci function: virtio structures, shared memory, MSI-X.
#pragma once

#include <cstdint>
#include <expected>
#include <string>

#include "pci/bar_layout.hpp"
#include "pci/config_space.hpp"

namespace vfsdax::pci {

// Where the capabilities with guest-writable fields landed in configuration space.
struct CapabilityOffsets {
    uint8_t msix = 0;
    uint8_t pci_cfg = 0;
};

std::expected<CapabilityOffsets, std::string> install_capabilities(ConfigSpace& config,
                                                                   const RegistersLayout& registers,
                                                                   const SharedMemoryLayout& shared,
                                                                   uint16_t msix_vectors);

}  // namespace vfsdax::pci
