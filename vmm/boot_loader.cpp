// Linux 64-bit boot protocol loader (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol").
#include "boot_loader.hpp"

#include <asm/bootparam.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "bzimage.hpp"
#include "e820.hpp"
#include "long_mode.hpp"
#include "mptable.hpp"

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

}  // namespace

std::expected<BootEntry, std::string> load_linux(const GuestMemory& memory, layout::RamLayout ram,
                                                 const LinuxBoot& boot) {
    using namespace layout;
    auto image = parse_bzimage(boot.kernel);
    if (!image) return std::unexpected("--kernel: " + image.error());
    const setup_header& h = image->header;

    // The kernel decompresses itself within init_size bytes of where it is loaded.
    const uint64_t kernel_end = kKernelLoad + std::max<uint64_t>(h.init_size, image->kernel.size());
    if (kernel_end > ram.low_size)
        return std::unexpected(fmt::format("--memory: the kernel needs {} MiB below 3 GiB",
                                           (kernel_end + MiB - 1) / MiB));
    if (auto r = copy_in(memory, kKernelLoad, image->kernel, "--kernel"); !r)
        return std::unexpected(r.error());

    const uint64_t cmdline_max = std::min<uint64_t>(h.cmdline_size, kCmdlineMax - 1);
    if (boot.cmdline.size() > cmdline_max)
        return std::unexpected(fmt::format("--cmdline: {} bytes is longer than the kernel's {}",
                                           boot.cmdline.size(), cmdline_max));
    std::string cmdline(boot.cmdline);
    cmdline.push_back('\0');
    if (auto r = copy_in(memory, kCmdline, std::as_bytes(std::span(cmdline)), "--cmdline"); !r)
        return std::unexpected(r.error());

    boot_params params{};
    std::memcpy(&params.hdr, image->header_bytes.data(), image->header_bytes.size());
    params.hdr.setup_sects = h.setup_sects;
    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdline);

    if (!boot.initrd.empty()) {
        // As high as the kernel allows, below its initrd_addr_max and the end of low RAM.
        const uint64_t top = std::min<uint64_t>(uint64_t{h.initrd_addr_max} + 1, ram.low_size);
        const uint64_t size = boot.initrd.size();
        if (size > top || ((top - size) & ~(kPage - 1)) < kernel_end)
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
    return BootEntry{kKernelLoad + kEntry64Offset, kBootParams};
}

}  // namespace vfsdax::vmm
