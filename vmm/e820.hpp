// SPDX-License-Identifier: Apache-2.0
// The e820 memory map handed to Linux in boot_params.
#pragma once

#include <asm/bootparam.h>

#include <vector>

#include "layout.hpp"

namespace vfsdax::vmm {

// RAM, the reserved low area (EBDA, VGA, BIOS) and the pages KVM keeps below 4 GiB. The
// 32-bit PCI MMIO window [kMmio32Start, kMmio32End) is left out of the map on purpose: Linux
// looks for the largest gap below 4 GiB and uses it for PCI, and without ACPI it has no other
// way to learn of the window. 64-bit BARs sit above the end of RAM, also outside the map.
std::vector<boot_e820_entry> build_e820(layout::RamLayout ram);

}  // namespace vfsdax::vmm
