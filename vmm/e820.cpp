// SPDX-License-Identifier: Apache-2.0
// e820 map construction for the fixed vfsdax-vmm layout.
#include "e820.hpp"

#include <asm/e820.h>

namespace vfsdax::vmm {

std::vector<boot_e820_entry> build_e820(layout::RamLayout ram) {
    using namespace layout;
    std::vector<boot_e820_entry> map;
    auto add = [&](uint64_t start, uint64_t end, uint32_t type) {
        if (end > start) map.push_back(boot_e820_entry{start, end - start, type});
    };
    add(0, kEbda, E820_RAM);
    add(kEbda, kHighMemory, E820_RESERVED);
    add(kHighMemory, ram.low_size, E820_RAM);
    add(kIdentityMapPage, kTss + 3 * 4 * KiB, E820_RESERVED);
    add(kHighRamStart, kHighRamStart + ram.high_size, E820_RAM);
    return map;
}

}  // namespace vfsdax::vmm
