// SPDX-License-Identifier: Apache-2.0
// Places a kernel (bzImage or uncompressed vmlinux), its initrd, command line, boot_params, MP
// table and boot tables in RAM.
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>

#include "layout.hpp"
#include "vfsdax/memory/guest_memory.hpp"

namespace vfsdax::vmm {

struct LinuxBoot {
    std::span<const std::byte> kernel;  // the whole file: a bzImage, or a vmlinux (ELF)
    std::span<const std::byte> initrd;  // empty: none
    std::string_view cmdline;
    unsigned cpus = 1;
};

// Where the bootstrap vCPU starts: RIP and RSI (boot_params); and what was loaded, for the log.
struct BootEntry {
    uint64_t rip;
    uint64_t boot_params;
    std::string_view kernel_format;
};

// `memory` must map RAM as laid out by `ram`. Errors begin with the option at fault
// (--kernel, --initrd, --cmdline, --memory) and say why.
std::expected<BootEntry, std::string> load_linux(const GuestMemory& memory, layout::RamLayout ram,
                                                 const LinuxBoot& boot);

}  // namespace vfsdax::vmm
