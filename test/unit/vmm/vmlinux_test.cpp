// SPDX-License-Identifier: Apache-2.0
// Uncompressed-kernel (ELF vmlinux) parsing and loading, with crafted images in test RAM.
#include "vmlinux.hpp"

#include <asm/bootparam.h>
#include <linux/elf.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <vector>

#include "boot_loader.hpp"
#include "layout.hpp"

using namespace vfsdax;
using namespace vfsdax::vmm;
using namespace vfsdax::vmm::layout;

namespace {

constexpr uint64_t kTextAt = 16 * MiB;
constexpr uint64_t kTextBytes = 8192;
constexpr uint64_t kTextMem = 3 * 4096 + 8192;  // file bytes, then bss
constexpr uint64_t kDataAt = 20 * MiB;
constexpr uint64_t kDataBytes = 4096;
constexpr std::size_t kPhdrs = 3;  // text, a note, data
constexpr std::size_t kTextOffset = 4096;
constexpr std::size_t kDataOffset = kTextOffset + kTextBytes;

struct Image {
    Elf64_Ehdr eh{};
    Elf64_Phdr ph[kPhdrs]{};
};

// A vmlinux the way x86 links one: physical segments, e_entry = physical startup_64.
std::vector<std::byte> make_vmlinux(const std::function<void(Image&)>& tweak = {}) {
    Image im;
    std::memcpy(im.eh.e_ident, ELFMAG, SELFMAG);
    im.eh.e_ident[EI_CLASS] = ELFCLASS64;
    im.eh.e_ident[EI_DATA] = ELFDATA2LSB;
    im.eh.e_type = ET_EXEC;
    im.eh.e_machine = EM_X86_64;
    im.eh.e_entry = kTextAt;
    im.eh.e_phoff = sizeof(Elf64_Ehdr);
    im.eh.e_phentsize = sizeof(Elf64_Phdr);
    im.eh.e_phnum = kPhdrs;
    im.ph[0] = {PT_LOAD, PF_R | PF_X, kTextOffset, 0xffffffff81000000,
                kTextAt, kTextBytes,  kTextMem,    4096};
    im.ph[1] = {PT_NOTE, PF_R, kTextOffset, 0, 0, 16, 16, 4};
    im.ph[2] = {PT_LOAD, PF_R | PF_W, kDataOffset, 0xffffffff85000000,
                kDataAt, kDataBytes,  kDataBytes,  4096};
    if (tweak) tweak(im);
    std::vector<std::byte> file(kDataOffset + kDataBytes);
    std::memcpy(file.data(), &im.eh, sizeof(im.eh));
    std::memcpy(file.data() + sizeof(im.eh), im.ph, sizeof(im.ph));
    for (std::size_t i = kTextOffset; i < file.size(); ++i) file[i] = std::byte(i * 13 + 5);
    return file;
}

std::string parse_error(const std::function<void(Image&)>& tweak) {
    auto v = parse_vmlinux(make_vmlinux(tweak));
    REQUIRE_FALSE(v);
    return v.error();
}

struct TestRam {
    explicit TestRam(uint64_t size) : bytes(size, std::byte{0xee}) {
        REQUIRE(memory.add_region(GuestAddress(0), size, bytes.data()));
    }
    std::vector<std::byte> bytes;
    GuestMemory memory;
};

}  // namespace

TEST_CASE("a vmlinux parses into sorted segments and its physical entry point") {
    const auto file = make_vmlinux([](Image& im) { std::swap(im.ph[0], im.ph[2]); });
    auto v = parse_vmlinux(file);
    REQUIRE(v);
    REQUIRE(v->segments.size() == 2);  // the note is not loaded
    CHECK(v->segments[0].paddr == kTextAt);
    CHECK(v->segments[0].data.data() == file.data() + kTextOffset);
    CHECK(v->segments[0].data.size() == kTextBytes);
    CHECK(v->segments[0].memsz == kTextMem);
    CHECK(v->segments[1].paddr == kDataAt);
    CHECK(v->entry == kTextAt);
    CHECK(v->end == kDataAt + kDataBytes);
}

TEST_CASE("only ELF files are taken for a vmlinux") {
    CHECK(is_elf(make_vmlinux()));
    CHECK_FALSE(is_elf(std::vector<std::byte>(3)));
    std::vector<std::byte> bz(4096);
    CHECK_FALSE(is_elf(bz));
}

TEST_CASE("bad vmlinux images are refused with the reason") {
    CHECK_THAT(parse_vmlinux(std::vector<std::byte>(SELFMAG)).error(),
               Catch::Contains("not an ELF"));
    auto truncated = make_vmlinux();
    truncated.resize(sizeof(Elf64_Ehdr) - 1);
    CHECK_THAT(parse_vmlinux(truncated).error(), Catch::Contains("shorter than its header"));
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_ident[EI_CLASS] = ELFCLASS32; }),
               Catch::Contains("not a 64-bit little-endian x86-64"));
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_machine = EM_AARCH64; }),
               Catch::Contains("x86-64"));
    CHECK(parse_error([](Image& im) { im.eh.e_type = ET_DYN; }) ==
          "ELF type 3 is not an executable (ET_EXEC)");
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_phnum = 60000; }),
               Catch::Contains("program header table runs past"));
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_phoff = ~uint64_t{0} - 8; }),
               Catch::Contains("program header table runs past"));
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_phentsize = 32; }),
               Catch::Contains("program header table"));
    CHECK(parse_error([](Image& im) { im.ph[0].p_filesz = kTextMem + 1; }) ==
          "segment 0: 20481 file bytes exceed its 20480 memory bytes");
    CHECK(parse_error([](Image& im) { im.ph[2].p_offset = ~uint64_t{0} - 100; }) ==
          "segment 2 runs past the end of the file");
    CHECK(parse_error([](Image& im) { im.ph[2].p_paddr = ~uint64_t{0} - 100; }) ==
          "segment 2 wraps around the address space");
    CHECK(parse_error([](Image& im) { im.ph[2].p_paddr = kTextAt + kTextMem - 1; }) ==
          "segments at 0x1000000 and 0x1004fff overlap");
    CHECK(parse_error([](Image& im) {
              im.ph[0].p_type = PT_NOTE;
              im.ph[2].p_type = PT_NOTE;
          }) == "no loadable (PT_LOAD) segment");
    // The bss is not in the file: nothing would be there to run.
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_entry = kTextAt + kTextBytes; }),
               Catch::Contains("entry point 0x1002000 is not in a loaded segment"));
    CHECK_THAT(parse_error([](Image& im) { im.eh.e_entry = 0xffffffff81000000; }),
               Catch::Contains("not in a loaded segment"));
}

TEST_CASE("load_linux loads a vmlinux's segments, zeroes its bss and enters at startup_64") {
    TestRam ram(64 * MiB);
    const auto file = make_vmlinux();
    std::vector<std::byte> initrd(10000, std::byte{0x5a});
    auto entry = load_linux(ram.memory, RamLayout::of(64 * MiB),
                            LinuxBoot{file, initrd, "console=ttyS0", 1});
    REQUIRE(entry);
    CHECK(entry->rip == kTextAt);
    CHECK(entry->boot_params == kBootParams);
    CHECK(entry->kernel_format == "uncompressed vmlinux");
    CHECK(std::memcmp(ram.bytes.data() + kTextAt, file.data() + kTextOffset, kTextBytes) == 0);
    CHECK(std::memcmp(ram.bytes.data() + kDataAt, file.data() + kDataOffset, kDataBytes) == 0);
    for (uint64_t a = kTextAt + kTextBytes; a < kTextAt + kTextMem; ++a)
        REQUIRE(ram.bytes[a] == std::byte{0});
    CHECK(ram.bytes[kTextAt + kTextMem] == std::byte{0xee});  // nothing past the segment

    boot_params params;
    std::memcpy(&params, ram.bytes.data() + kBootParams, sizeof(params));
    CHECK(params.hdr.boot_flag == 0xaa55);
    CHECK(params.hdr.header == 0x53726448);
    CHECK(params.hdr.version == 0x020c);
    CHECK(params.hdr.type_of_loader == 0xff);
    CHECK(params.hdr.cmd_line_ptr == kCmdline);
    CHECK(params.hdr.cmdline_size == 2047);
    CHECK(params.hdr.ramdisk_size == initrd.size());
    CHECK(params.hdr.ramdisk_image >= kDataAt + kDataBytes);
    CHECK(params.hdr.ramdisk_image + initrd.size() <= 64 * MiB);
    CHECK(ram.bytes[params.hdr.ramdisk_image] == std::byte{0x5a});
    CHECK(params.e820_entries == 4);
}

TEST_CASE("load_linux refuses a vmlinux that does not fit, naming the option") {
    TestRam ram(32 * MiB);
    const RamLayout layout = RamLayout::of(32 * MiB);
    CHECK(load_linux(
              ram.memory, layout,
              LinuxBoot{make_vmlinux([](Image& im) { im.ph[2].p_paddr = 40 * MiB; }), {}, "", 1})
              .error() == "--memory: the kernel needs 41 MiB below 3 GiB");
    CHECK(load_linux(ram.memory, layout,
                     LinuxBoot{make_vmlinux([](Image& im) {
                                   im.ph[0].p_paddr = 0x8000;
                                   im.eh.e_entry = 0x8000;
                               }),
                               {},
                               "",
                               1})
              .error() ==
          "--kernel: a segment at 0x8000 would overwrite the boot data below 1 MiB");
    CHECK_THAT(
        load_linux(ram.memory, layout,
                   LinuxBoot{make_vmlinux([](Image& im) { im.eh.e_type = ET_REL; }), {}, "", 1})
            .error(),
        Catch::StartsWith("--kernel: ELF type 1"));
    CHECK(load_linux(ram.memory, layout, LinuxBoot{make_vmlinux(), {}, std::string(2048, 'x'), 1})
              .error() == "--cmdline: 2048 bytes is longer than the kernel's 2047");
    std::vector<std::byte> big_initrd(12 * MiB);
    CHECK_THAT(load_linux(ram.memory, layout, LinuxBoot{make_vmlinux(), big_initrd, "", 1}).error(),
               Catch::StartsWith("--initrd: 12 MiB does not fit"));
}
