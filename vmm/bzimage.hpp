// SPDX-License-Identifier: Apache-2.0
// bzImage parsing: the setup header and the protected-mode kernel of a Linux x86 image.
#pragma once

#include <asm/bootparam.h>

#include <cstddef>
#include <expected>
#include <span>
#include <string>

namespace vfsdax::vmm {

inline constexpr std::size_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlag = 0xaa55;
// xloadflags (XLF_KERNEL_64: the 64-bit entry point at +0x200) arrived with protocol 2.12.
inline constexpr uint16_t kMinProtocol = 0x020c;
inline constexpr uint64_t kEntry64Offset = 0x200;

struct BzImage {
    setup_header header;                      // as found in the image, setup_sects normalised
    std::span<const std::byte> header_bytes;  // what the loader copies into boot_params.hdr
    std::span<const std::byte> kernel;        // the protected-mode kernel, loaded at 1 MiB
};

// The error names what is wrong with the image.
std::expected<BzImage, std::string> parse_bzimage(std::span<const std::byte> image);

}  // namespace vfsdax::vmm
