// SPDX-License-Identifier: Apache-2.0
// Hostile accesses: wrong widths, offsets and alignments, unknown BARs, random register storms.
#include <linux/pci_regs.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <random>

#include "pci_rig.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using vfsdax::test::PciRig;
using virtio::feature_bit;

namespace {

uint64_t bar_read(PciRig& rig, uint8_t bar, uint64_t offset, std::size_t width) {
    std::array<std::byte, 16> bytes;
    bytes.fill(std::byte{0xaa});
    rig.transport->bar_read(bar, offset, std::span(bytes).first(width));
    uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        if (bytes[i] != std::byte{0}) value |= uint64_t{1} << std::min<std::size_t>(i, 63);
    }
    return value;  // nonzero iff some byte was nonzero
}

void bar_write(PciRig& rig, uint8_t bar, uint64_t offset, std::size_t width, uint8_t fill) {
    std::array<std::byte, 16> bytes;
    bytes.fill(std::byte{fill});
    rig.transport->bar_write(bar, offset, std::span(bytes).first(width));
}

}  // namespace

TEST_CASE("configuration accesses of odd width or alignment read zero and write nothing") {
    PciRig rig;
    std::array<uint32_t, 64> before;
    for (uint16_t i = 0; i < 64; ++i) before[i] = rig.bus.config_read(4 * i, 4);
    for (std::size_t width : {0, 3, 5, 8, 16}) {
        std::array<std::byte, 16> bytes;
        bytes.fill(std::byte{0xff});
        rig.transport->config_read(0, std::span(bytes).first(width));
        for (std::size_t i = 0; i < width; ++i) CHECK(bytes[i] == std::byte{0});
        rig.transport->config_write(PCI_COMMAND, std::span<const std::byte>(bytes).first(width));
    }
    // Misaligned, and beyond the 256-byte header (no extended space), and far beyond.
    for (uint32_t offset : {1u, 2u, 3u, 255u, 256u, 4092u, 0xffff'fffcu}) {
        CHECK(rig.bus.config_read(static_cast<uint16_t>(offset), 4) == 0);
        std::array<std::byte, 4> ones;
        ones.fill(std::byte{0xff});
        rig.transport->config_write(offset, ones);
        std::array<std::byte, 4> out;
        rig.transport->config_read(offset, out);
        if (offset % 4 != 0 || offset >= 256) CHECK(out == std::array<std::byte, 4>{});
    }
    for (uint16_t i = 0; i < 64; ++i) CHECK(rig.bus.config_read(4 * i, 4) == before[i]);
}

TEST_CASE("BAR accesses outside any register read zero and write nothing") {
    PciRig rig;
    rig.probe();
    const uint64_t bar0 = rig.driver.bar(0).size;
    for (uint8_t bar : {1, 2, 3, 4, 5, 6, 255}) {
        CHECK(bar_read(rig, bar, 0, 4) == 0);
        bar_write(rig, bar, 0, 4, 0xff);
    }
    for (uint64_t offset :
         {bar0, bar0 + 4, ~uint64_t{0} - 3, ~uint64_t{0} - 7, uint64_t{1} << 63}) {
        CHECK(bar_read(rig, 0, offset, 4) == 0);
        CHECK(bar_read(rig, 0, offset, 8) == 0);
        bar_write(rig, 0, offset, 4, 0xff);
    }
    // Widths no register has, and misaligned accesses.
    for (std::size_t width : {0, 3, 16}) CHECK(bar_read(rig, 0, 0, width) == 0);
    CHECK(bar_read(rig, 0, VIRTIO_PCI_COMMON_NUMQ + 1, 2) == 0);
    CHECK(rig.driver.status() == 0);
    CHECK(rig.device.kicks().empty());
}

TEST_CASE("common configuration fields answer only their natural width") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    CHECK(d.common_read(VIRTIO_PCI_COMMON_NUMQ, 2) == 2);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_NUMQ, 4) == 0);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_NUMQ, 1) == 0);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 1) == 0);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_DESCLO, 8) == 0);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_DF + 1, 1) == 0);
    d.common_write(VIRTIO_PCI_COMMON_STATUS, 2, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    d.common_write(VIRTIO_PCI_COMMON_STATUS, 4, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    CHECK(d.status() == 0);
    d.common_write(VIRTIO_PCI_COMMON_Q_DESCLO, 8, 0x1122334455667788);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_DESCLO, 4) == 0);
    // Read-only fields ignore writes.
    d.common_write(VIRTIO_PCI_COMMON_NUMQ, 2, 9);
    d.common_write(VIRTIO_PCI_COMMON_CFGGENERATION, 1, 9);
    d.common_write(VIRTIO_PCI_COMMON_Q_NOFF, 2, 9);
    CHECK(d.num_queues() == 2);
    CHECK(d.config_generation() == 0);
    CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_NOFF, 2) == 0);
}

TEST_CASE("doorbells, ISR, MSI-X and device config refuse the wrong shape") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    d.driver_ok();
    const auto doorbells = rig.transport->notify_addresses();
    // Width 1 and 8, misaligned, between doorbells, and past the last queue.
    bar_write(rig, 0, doorbells[0].offset, 1, 0);
    bar_write(rig, 0, doorbells[0].offset, 8, 0);
    bar_write(rig, 0, doorbells[0].offset + 2, 2, 0);
    bar_write(rig, 0, doorbells.back().offset + 4, 2, 0);
    rig.transport->notify(2, 0);
    rig.transport->notify(0xffff, 0);
    CHECK(rig.device.kicks().empty());  // and no queue is enabled anyway

    rig.device.change_config(0, 1);
    REQUIRE(rig.sink.intx());
    CHECK(bar_read(rig, 0, 0x1000, 4) == 0);  // ISR at a 4-byte width: nothing, not cleared
    CHECK(rig.sink.intx());
    CHECK(d.read_isr() == VIRTIO_PCI_ISR_CONFIG);

    // Device config: past its end, and misaligned.
    CHECK(d.read_device_config(6, 2) == 0);
    rig.driver.write_device_config(0, 4, 0x11223344);
    CHECK(bar_read(rig, 0, rig.driver.device_config()->offset + 1, 2) == 0);
    CHECK(bar_read(rig, 0, rig.driver.device_config()->offset + 8, 4) == 0);
}

TEST_CASE("a storm of random accesses leaves a transport a driver can still bring up") {
    PciRig rig;
    rig.probe();
    std::mt19937_64 random(20240611);
    const uint64_t bar0 = rig.driver.bar(0).size;
    for (int i = 0; i < 200000; ++i) {
        const uint64_t r = random();
        const std::size_t width = std::size_t{1} << (r % 4);
        std::array<std::byte, 8> bytes;
        const uint64_t value = random();
        std::memcpy(bytes.data(), &value, sizeof(value));
        const auto data = std::span(bytes).first(width);
        switch ((r >> 8) % 6) {
            case 0:
                rig.transport->config_read((r >> 16) % 260, data);
                break;
            // Keep BAR placement out of the storm so the driver's view stays valid.
            case 1:
                if ((r >> 16) % 256 >= PCI_STD_HEADER_SIZEOF) {
                    rig.transport->config_write((r >> 16) % 256, data);
                }
                break;
            case 2:
                rig.transport->bar_read(0, (r >> 16) % (bar0 + 16), data);
                break;
            case 3:
                rig.transport->bar_write(0, (r >> 16) % (bar0 + 16), data);
                break;
            case 4:
                rig.transport->bar_write(0, (r >> 16) % 64, data);
                break;  // common cfg
            default:
                rig.transport->notify(static_cast<uint16_t>(r >> 16) % 4, 0);
                break;
        }
    }
    rig.driver.disable_msix();
    rig.driver.reset();
    REQUIRE(rig.driver.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    rig.driver.driver_ok();
    CHECK((rig.driver.status() & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
}
