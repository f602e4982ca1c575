// SPDX-License-Identifier: Apache-2.0
// Checks an uncompressed kernel (ELF64, x86-64, ET_EXEC) and lists what to load where.
#include "vmlinux.hpp"

#include <fmt/format.h>
#include <linux/elf.h>

#include <algorithm>
#include <cstring>

namespace vfsdax::vmm {
namespace {

// Whether [offset, offset + size) lies within `total` bytes, without overflowing.
bool within(uint64_t offset, uint64_t size, uint64_t total) {
    return offset <= total && size <= total - offset;
}

}  // namespace

bool is_elf(std::span<const std::byte> image) {
    return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

std::expected<Vmlinux, std::string> parse_vmlinux(std::span<const std::byte> image) {
    Elf64_Ehdr eh;
    if (!is_elf(image) || image.size() < sizeof(eh))
        return std::unexpected("not an ELF file (no ELF magic, or shorter than its header)");
    std::memcpy(&eh, image.data(), sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64)
        return std::unexpected("not a 64-bit little-endian x86-64 ELF");
    if (eh.e_type != ET_EXEC)
        return std::unexpected(
            fmt::format("ELF type {} is not an executable (ET_EXEC)", eh.e_type));
    if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
        !within(eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), image.size()))
        return std::unexpected("the program header table runs past the end of the file");

    Vmlinux out{};
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
        if (ph.p_filesz > ph.p_memsz)
            return std::unexpected(
                fmt::format("segment {}: {} file bytes exceed its {} memory bytes", i, ph.p_filesz,
                            ph.p_memsz));
        if (!within(ph.p_offset, ph.p_filesz, image.size()))
            return std::unexpected(fmt::format("segment {} runs past the end of the file", i));
        if (!within(ph.p_paddr, ph.p_memsz, UINT64_MAX))
            return std::unexpected(fmt::format("segment {} wraps around the address space", i));
        out.segments.push_back({ph.p_paddr, image.subspan(ph.p_offset, ph.p_filesz), ph.p_memsz});
    }
    if (out.segments.empty()) return std::unexpected("no loadable (PT_LOAD) segment");
    std::ranges::sort(out.segments, {}, &VmlinuxSegment::paddr);
    for (std::size_t i = 1; i < out.segments.size(); ++i) {
        const VmlinuxSegment& prev = out.segments[i - 1];
        if (out.segments[i].paddr < prev.paddr + prev.memsz)
            return std::unexpected(fmt::format("segments at {:#x} and {:#x} overlap", prev.paddr,
                                               out.segments[i].paddr));
    }
    out.end = out.segments.back().paddr + out.segments.back().memsz;
    // x86's vmlinux is linked with ENTRY(phys_startup_64): e_entry is a physical address.
    const bool entry_loaded = std::ranges::any_of(out.segments, [&](const VmlinuxSegment& s) {
        return eh.e_entry >= s.paddr && eh.e_entry - s.paddr < s.data.size();
    });
    if (!entry_loaded)
        return std::unexpected(fmt::format(
            "entry point {:#x} is not in a loaded segment (not a Linux vmlinux?)", eh.e_entry));
    out.entry = eh.e_entry;
    return out;
}

}  // namespace vfsdax::vmm
