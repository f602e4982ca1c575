// SPDX-License-Identifier: Apache-2.0
// Linux 64-bit boot protocol loader (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"),
// for a bzImage or an uncompressed vmlinux.
#include "boot_loader.hpp"

#include <asm/bootparam.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "bzimage.hpp"
#include "e820.hpp"
#include "long_mode.hpp"
#include "mptable.hpp"
#include "vmlinux.hpp"

namespace vfsdax::vmm {
namespace {

std::expected<void, std::string> copy_in(const GuestMemory& memory, uint64_t addr,
                                         std::span<const std::byte> data, std::string_view what) {
    auto span = memory.translate(GuestAddress(addr), data.size());
    if (!span)
        return std::unexpected(fmt::format("{}: does not fit in guest RAM at {:#x} ({})", what,
                                           addr, to_string(span.error())));
    std::memcpy(span->data(), data.data(), data.size());
    return {};
}

constexpr uint8_t kLoaderTypeUndefined = 0xff;
constexpr uint64_t kPage = 4096;
// Neither a vmlinux nor boot_params says how long a command line the kernel takes; every x86-64
// kernel takes 2047 bytes (COMMAND_LINE_SIZE 2048) and an initrd below 2 GiB.
constexpr uint64_t kVmlinuxCmdlineMax = 2047;
constexpr uint32_t kVmlinuxInitrdAddrMax = 0x7fffffff;

// What the kernel image decides for the rest of the boot.
struct LoadedKernel {
    std::string_view format;
    uint64_t entry;
    uint64_t end;  // the initrd goes above this
    uint64_t cmdline_max;
    uint64_t initrd_addr_max;
};

std::unexpected<std::string> kernel_too_big(uint64_t end) {
    return std::unexpected(fmt::format("--memory: the kernel needs {} MiB below 3 GiB",
                                       (end + layout::MiB - 1) / layout::MiB));
}

// A bzImage: the protected-mode part at 1 MiB, entered at its 64-bit entry; it decompresses
// itself within init_size bytes. boot_params.hdr starts as the image's own setup header.
std::expected<LoadedKernel, std::string> load_bzimage(const GuestMemory& memory,
                                                      layout::RamLayout ram,
                                                      std::span<const std::byte> file,
                                                      boot_params& params) {
    using namespace layout;
    auto image = parse_bzimage(file);
    if (!image) return std::unexpected("--kernel: " + image.error());
    const setup_header& h = image->header;
    const uint64_t end = kKernelLoad + std::max<uint64_t>(h.init_size, image->kernel.size());
    if (end > ram.low_size) return kernel_too_big(end);
    if (auto r = copy_in(memory, kKernelLoad, image->kernel, "--kernel"); !r)
        return std::unexpected(r.error());
    std::memcpy(&params.hdr, image->header_bytes.data(), image->header_bytes.size());
    params.hdr.setup_sects = h.setup_sects;
    return LoadedKernel{"bzImage", kKernelLoad + kEntry64Offset, end,
                        std::min<uint64_t>(h.cmdline_size, kCmdlineMax - 1), h.initrd_addr_max};
}

// An uncompressed vmlinux: each segment at its physical address, entered at startup_64 with no
// decompressor in between (so no physical KASLR either). It carries no setup header, so
// boot_params.hdr gets the fields a boot loader owns, as protocol 2.12 defines them.
std::expected<LoadedKernel, std::string> load_vmlinux(const GuestMemory& memory,
                                                      layout::RamLayout ram,
                                                      std::span<const std::byte> file,
                                                      boot_params& params) {
    using namespace layout;
    auto image = parse_vmlinux(file);
    if (!image) return std::unexpected("--kernel: " + image.error());
    if (image->segments.front().paddr < kHighMemory)
        return std::unexpected(
            fmt::format("--kernel: a segment at {:#x} would overwrite the boot data below 1 MiB",
                        image->segments.front().paddr));
    if (image->end > ram.low_size) return kernel_too_big(image->end);
    for (const VmlinuxSegment& segment : image->segments) {
        if (auto r = copy_in(memory, segment.paddr, segment.data, "--kernel"); !r)
            return std::unexpected(r.error());
        // The bss: RAM need not be fresh (a caller may load into memory it used before).
        auto bss = memory.translate(GuestAddress(segment.paddr + segment.data.size()),
                                    segment.memsz - segment.data.size());
        if (!bss) return std::unexpected(fmt::format("--kernel: {}", to_string(bss.error())));
        std::memset(bss->data(), 0, bss->size());
    }
    params.hdr.boot_flag = kBootFlag;
    params.hdr.header = kHdrSMagic;
    params.hdr.version = kMinProtocol;
    params.hdr.cmdline_size = kVmlinuxCmdlineMax;
    params.hdr.initrd_addr_max = kVmlinuxInitrdAddrMax;
    return LoadedKernel{"uncompressed vmlinux", image->entry, image->end, kVmlinuxCmdlineMax,
                        kVmlinuxInitrdAddrMax};
}

}  // namespace

std::expected<BootEntry, std::string> load_linux(const GuestMemory& memory, layout::RamLayout ram,
                                                 const LinuxBoot& boot) {
    using namespace layout;
    boot_params params{};
    auto kernel = is_elf(boot.kernel) ? load_vmlinux(memory, ram, boot.kernel, params)
                                      : load_bzimage(memory, ram, boot.kernel, params);
    if (!kernel) return std::unexpected(kernel.error());

    if (boot.cmdline.size() > kernel->cmdline_max)
        return std::unexpected(fmt::format("--cmdline: {} bytes is longer than the kernel's {}",
                                           boot.cmdline.size(), kernel->cmdline_max));
    std::string cmdline(boot.cmdline);
    cmdline.push_back('\0');
    if (auto r = copy_in(memory, kCmdline, std::as_bytes(std::span(cmdline)), "--cmdline"); !r)
        return std::unexpected(r.error());

    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdline);

    if (!boot.initrd.empty()) {
        // As high as the kernel allows, below its initrd_addr_max and the end of low RAM.
        const uint64_t top = std::min<uint64_t>(kernel->initrd_addr_max + 1, ram.low_size);
        const uint64_t size = boot.initrd.size();
        if (size > top || ((top - size) & ~(kPage - 1)) < kernel->end)
            return std::unexpected(fmt::format(
                "--initrd: {} MiB does not fit between the kernel and {:#x}; raise --memory",
                (size + MiB - 1) / MiB, top));
        const uint64_t addr = (top - size) & ~(kPage - 1);
        if (auto r = copy_in(memory, addr, boot.initrd, "--initrd"); !r)
            return std::unexpected(r.error());
        params.hdr.ramdisk_image = static_cast<uint32_t>(addr);
        params.hdr.ramdisk_size = static_cast<uint32_t>(size);
    }

    const auto e820 = build_e820(ram);
    std::copy(e820.begin(), e820.end(), params.e820_table);
    params.e820_entries = static_cast<uint8_t>(e820.size());
    if (auto r = copy_in(memory, kBootParams, std::as_bytes(std::span(&params, 1)), "boot_params");
        !r)
        return std::unexpected(r.error());

    const auto mptable = build_mptable(static_cast<uint32_t>(kMpTable), boot.cpus);
    if (mptable.size() > kMpTableMax) return std::unexpected("--cpus: the MP table does not fit");
    if (auto r = copy_in(memory, kMpTable, mptable, "MP table"); !r)
        return std::unexpected(r.error());

    if (auto r = write_long_mode_tables(memory); !r)
        return std::unexpected(
            fmt::format("--memory: no room for boot page tables ({})", to_string(r.error())));
    return BootEntry{kernel->entry, kBootParams, kernel->format};
}

}  // namespace vfsdax::vmm
