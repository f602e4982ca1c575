// SPDX-License-Identifier: Apache-2.0
// GDT and identity page tables in guest memory.
#include "long_mode.hpp"

#include "layout.hpp"

namespace vfsdax::vmm {

std::expected<void, MemoryError> write_long_mode_tables(const GuestMemory& memory) {
    using namespace layout;
    const uint64_t gdt[kGdtEntries] = {0, 0, kGdtCode64, kGdtData, kGdtTss};
    if (auto r = memory.write(GuestAddress(kGdt), gdt); !r) return r;

    constexpr uint64_t kTable = kPtePresent | kPteWritable;
    constexpr uint64_t kDirs = kIdentityMapped / GiB;
    if (auto r = memory.write(GuestAddress(kPml4), kPdpt | kTable); !r) return r;
    for (uint64_t d = 0; d < kDirs; ++d) {
        const uint64_t dir = kPageDirs + d * 4096;
        if (auto r = memory.write(GuestAddress(kPdpt + d * 8), dir | kTable); !r) return r;
        for (uint64_t i = 0; i < 512; ++i) {
            const uint64_t page = d * GiB + i * 2 * MiB;
            if (auto r = memory.write(GuestAddress(dir + i * 8), page | kTable | kPteHuge); !r)
                return r;
        }
    }
    return {};
}

}  // namespace vfsdax::vmm
