// SPDX-License-Identifier: Apache-2.0
// vmlinux parsing: the loadable segments and 64-bit entry point of an uncompressed x86-64 Linux.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <vector>

namespace vfsdax::vmm {

// One PT_LOAD segment: `data` goes to guest-physical `paddr`; the rest up to `memsz` is zero.
struct VmlinuxSegment {
    uint64_t paddr;
    std::span<const std::byte> data;
    uint64_t memsz;
};

struct Vmlinux {
    std::vector<VmlinuxSegment> segments;  // sorted by paddr, not overlapping
    uint64_t entry;                        // guest-physical startup_64 (x86 links e_entry so)
    uint64_t end;                          // first byte above every segment
};

// Whether `image` starts with the ELF magic (else it is taken for a bzImage).
bool is_elf(std::span<const std::byte> image);

// The error names what is wrong with the image.
std::expected<Vmlinux, std::string> parse_vmlinux(std::span<const std::byte> image);

}  // namespace vfsdax::vmm
