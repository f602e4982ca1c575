// SPDX-License-Identifier: Apache-2.0
// Checks a bzImage against the Linux x86 boot protocol (Documentation/arch/x86/boot.rst).
#include "bzimage.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstring>

namespace vfsdax::vmm {

std::expected<BzImage, std::string> parse_bzimage(std::span<const std::byte> image) {
    BzImage out{};
    if (image.size() < kSetupHeaderOffset + sizeof(setup_header))
        return std::unexpected(fmt::format("{} bytes is too small for a bzImage", image.size()));
    std::memcpy(&out.header, image.data() + kSetupHeaderOffset, sizeof(setup_header));
    setup_header& h = out.header;
    if (h.boot_flag != kBootFlag || h.header != kHdrSMagic)
        return std::unexpected("no Linux boot header (boot_flag 0xaa55 and \"HdrS\")");
    if (h.version < kMinProtocol)
        return std::unexpected(fmt::format("boot protocol {}.{:02} is older than 2.12",
                                           h.version >> 8, h.version & 0xff));
    if (!(h.xloadflags & XLF_KERNEL_64))
        return std::unexpected("not a 64-bit kernel (XLF_KERNEL_64)");
    if (!(h.loadflags & LOADED_HIGH)) return std::unexpected("kernel is not loaded high (zImage)");
    // The header ends at 0x202 plus the byte at 0x201 (the jump's offset).
    // boot_params has room for the header up to 0x290 (edd_mbr_sig_buffer).
    constexpr std::size_t kBootParamsHeaderEnd = offsetof(boot_params, edd_mbr_sig_buffer);
    const std::size_t header_end = 0x202 + static_cast<uint8_t>(image[0x201]);
    if (header_end > image.size() || header_end > kBootParamsHeaderEnd)
        return std::unexpected("setup header length runs past the image");
    out.header_bytes = image.subspan(kSetupHeaderOffset, header_end - kSetupHeaderOffset);
    if (h.setup_sects == 0) h.setup_sects = 4;  // boot protocol: 0 means 4
    const std::size_t kernel_offset = (std::size_t{h.setup_sects} + 1) * 512;
    if (kernel_offset >= image.size())
        return std::unexpected(
            fmt::format("setup_sects {} puts the kernel past the end of the image", h.setup_sects));
    out.kernel = image.subspan(kernel_offset);
    return out;
}

}  // namespace vfsdax::vmm
