// SPDX-License-Identifier: Apache-2.0
// bzImage parsing and Linux boot placement, with a crafted image in a test RAM buffer.
#include "boot_loader.hpp"

#include <asm/bootparam.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "bzimage.hpp"
#include "layout.hpp"
#include "long_mode.hpp"

using namespace vfsdax;
using namespace vfsdax::vmm;
using namespace vfsdax::vmm::layout;

namespace {

constexpr uint8_t kSetupSects = 4;
constexpr std::size_t kPayload = 8192;

std::vector<std::byte> make_image(void (*tweak)(setup_header&) = nullptr) {
    std::vector<std::byte> image((kSetupSects + 1) * 512 + kPayload);
    for (std::size_t i = 0; i < kPayload; ++i)
        image[(kSetupSects + 1) * 512 + i] = std::byte(i * 7 + 1);
    setup_header h{};
    h.setup_sects = kSetupSects;
    h.boot_flag = 0xaa55;
    h.jump = 0x66eb;  // jmp over the header, which ends at 0x202 + 0x66 (protocol 2.15)
    h.header = 0x53726448;
    h.version = 0x020f;
    h.loadflags = LOADED_HIGH;
    h.initrd_addr_max = 0x7fffffff;
    h.kernel_alignment = 0x200000;
    h.relocatable_kernel = 1;
    h.xloadflags = XLF_KERNEL_64;
    h.cmdline_size = 2047;
    h.init_size = 4 * MiB;
    if (tweak) tweak(h);
    std::memcpy(image.data() + kSetupHeaderOffset, &h, sizeof(h));
    return image;
}

struct TestRam {
    explicit TestRam(uint64_t size) : bytes(size) {
        REQUIRE(memory.add_region(GuestAddress(0), size, bytes.data()));
    }
    template <typename T>
    T at(uint64_t addr) const {
        T v;
        std::memcpy(&v, bytes.data() + addr, sizeof(T));
        return v;
    }
    std::vector<std::byte> bytes;
    GuestMemory memory;
};

}  // namespace

TEST_CASE("a well-formed bzImage parses") {
    const auto image = make_image();
    auto bz = parse_bzimage(image);
    REQUIRE(bz);
    CHECK(bz->header.version == 0x020f);
    CHECK(bz->kernel.size() == kPayload);
    CHECK(bz->kernel.data() == image.data() + (kSetupSects + 1) * 512);
    CHECK(bz->header_bytes.size() == 0x202 + 0x66 - 0x1f1);
}

TEST_CASE("setup_sects 0 means 4") {
    auto image = make_image([](setup_header& h) { h.setup_sects = 0; });
    auto bz = parse_bzimage(image);
    REQUIRE(bz);
    CHECK(bz->header.setup_sects == 4);
    CHECK(bz->kernel.size() == kPayload);
}

TEST_CASE("bad images are refused with the reason") {
    CHECK_THAT(parse_bzimage(std::vector<std::byte>(100)).error(), Catch::Contains("too small"));
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.header = 0; })).error(),
               Catch::Contains("no Linux boot header"));
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.boot_flag = 0; })).error(),
               Catch::Contains("no Linux boot header"));
    CHECK(parse_bzimage(make_image([](setup_header& h) { h.version = 0x0206; })).error() ==
          "boot protocol 2.06 is older than 2.12");
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.xloadflags = 0; })).error(),
               Catch::Contains("not a 64-bit kernel"));
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.loadflags = 0; })).error(),
               Catch::Contains("not loaded high"));
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.setup_sects = 200; })).error(),
               Catch::Contains("past the end"));
    CHECK_THAT(parse_bzimage(make_image([](setup_header& h) { h.jump = 0xffeb; })).error(),
               Catch::Contains("runs past"));
}

TEST_CASE("load_linux places kernel, command line, initrd, boot_params and boot tables") {
    TestRam ram(64 * MiB);
    const auto image = make_image();
    std::vector<std::byte> initrd(10000, std::byte{0x5a});
    auto entry = load_linux(ram.memory, RamLayout::of(64 * MiB),
                            LinuxBoot{image, initrd, "console=ttyS0 hello", 2});
    REQUIRE(entry);
    CHECK(entry->rip == 1 * MiB + 0x200);
    CHECK(entry->boot_params == kBootParams);
    CHECK(entry->kernel_format == "bzImage");

    CHECK(std::memcmp(ram.bytes.data() + 1 * MiB, image.data() + (kSetupSects + 1) * 512,
                      kPayload) == 0);
    CHECK(std::strcmp(reinterpret_cast<const char*>(ram.bytes.data() + kCmdline),
                      "console=ttyS0 hello") == 0);

    const auto params = ram.at<boot_params>(kBootParams);
    CHECK(params.hdr.header == 0x53726448);
    CHECK(params.hdr.type_of_loader == 0xff);
    CHECK(params.hdr.cmd_line_ptr == kCmdline);
    CHECK(params.hdr.ramdisk_size == initrd.size());
    // The initrd sits as high as low RAM allows, page aligned, after the kernel's init_size.
    CHECK(params.hdr.ramdisk_image % 4096 == 0);
    CHECK(params.hdr.ramdisk_image + initrd.size() <= 64 * MiB);
    CHECK(params.hdr.ramdisk_image + initrd.size() > 64 * MiB - 4096);
    CHECK(params.hdr.ramdisk_image >= 1 * MiB + 4 * MiB);
    CHECK(ram.at<uint8_t>(params.hdr.ramdisk_image) == 0x5a);
    REQUIRE(params.e820_entries == 4);
    CHECK(params.e820_table[2].addr == 1 * MiB);
    CHECK(params.e820_table[2].size == 63 * MiB);

    CHECK(std::memcmp(ram.bytes.data() + kMpTable, "_MP_", 4) == 0);

    CHECK(ram.at<uint64_t>(kGdt + 0x10) == kGdtCode64);
    CHECK(ram.at<uint64_t>(kGdt + 0x18) == kGdtData);
    CHECK(ram.at<uint64_t>(kPml4) == (kPdpt | 3));
    for (uint64_t d = 0; d < 4; ++d)
        CHECK(ram.at<uint64_t>(kPdpt + d * 8) == ((kPageDirs + d * 4096) | 3));
    // Entry i of directory d maps 2 MiB page d * 512 + i onto itself.
    CHECK(ram.at<uint64_t>(kPageDirs) == 0x83);
    CHECK(ram.at<uint64_t>(kPageDirs + 8) == (2 * MiB | 0x83));
    CHECK(ram.at<uint64_t>(kPageDirs + 3 * 4096 + 511 * 8) == ((4 * GiB - 2 * MiB) | 0x83));
}

TEST_CASE("an initrd_addr_max below RAM's end caps the initrd placement") {
    TestRam ram(64 * MiB);
    const auto image = make_image([](setup_header& h) { h.initrd_addr_max = 32 * MiB - 1; });
    std::vector<std::byte> initrd(4096, std::byte{1});
    auto entry = load_linux(ram.memory, RamLayout::of(64 * MiB), LinuxBoot{image, initrd, "", 1});
    REQUIRE(entry);
    CHECK(ram.at<boot_params>(kBootParams).hdr.ramdisk_image == 32 * MiB - 4096);
}

TEST_CASE("load_linux names the option at fault") {
    TestRam ram(16 * MiB);
    const auto image = make_image();
    const RamLayout layout = RamLayout::of(16 * MiB);

    CHECK_THAT(
        load_linux(ram.memory, layout, LinuxBoot{std::vector<std::byte>(10), {}, "", 1}).error(),
        Catch::StartsWith("--kernel: "));
    const std::string long_cmdline(3000, 'x');
    CHECK(load_linux(ram.memory, layout, LinuxBoot{image, {}, long_cmdline, 1}).error() ==
          "--cmdline: 3000 bytes is longer than the kernel's 2047");
    std::vector<std::byte> big_initrd(12 * MiB);
    CHECK_THAT(load_linux(ram.memory, layout, LinuxBoot{image, big_initrd, "", 1}).error(),
               Catch::StartsWith("--initrd: 12 MiB does not fit"));
    const auto huge = make_image([](setup_header& h) { h.init_size = 64 * MiB; });
    CHECK(load_linux(ram.memory, layout, LinuxBoot{huge, {}, "", 1}).error() ==
          "--memory: the kernel needs 65 MiB below 3 GiB");
}
