// SPDX-License-Identifier: Apache-2.0
// PCI configuration space: identity, BAR sizing and placement, command register, capabilities.
#include <linux/pci_regs.h>

#include <catch2/catch.hpp>

#include "pci_rig.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using vfsdax::test::PciRig;

TEST_CASE("identity registers follow the virtio-pci rules") {
    PciRig rig;
    auto& bus = rig.bus;
    CHECK(bus.config_read(PCI_VENDOR_ID, 2) == 0x1af4);
    CHECK(bus.config_read(PCI_DEVICE_ID, 2) == 0x1040 + VIRTIO_ID_FS);
    CHECK(bus.config_read(PCI_REVISION_ID, 1) == 1);
    CHECK(bus.config_read(PCI_CLASS_DEVICE, 2) == 0x0180);  // mass storage, other
    CHECK(bus.config_read(PCI_HEADER_TYPE, 1) == PCI_HEADER_TYPE_NORMAL);
    CHECK(bus.config_read(PCI_SUBSYSTEM_VENDOR_ID, 2) == 0x1af4);
    CHECK(bus.config_read(PCI_SUBSYSTEM_ID, 2) == 0x1100);
    CHECK(bus.config_read(PCI_INTERRUPT_PIN, 1) == 1);
    CHECK((bus.config_read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) != 0);
    // Identity is read-only.
    bus.config_write(PCI_VENDOR_ID, 4, 0x12345678);
    CHECK(bus.config_read(PCI_VENDOR_ID, 4) == 0x1af4 + ((0x1040u + VIRTIO_ID_FS) << 16));
}

TEST_CASE("the command register keeps only memory, bus master and INTx disable") {
    PciRig rig;
    rig.bus.config_write(PCI_COMMAND, 2, 0xffff);
    CHECK(rig.bus.config_read(PCI_COMMAND, 2) ==
          (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE));
    rig.bus.config_write(PCI_COMMAND, 2, 0);
    CHECK(rig.bus.config_read(PCI_COMMAND, 2) == 0);
    rig.bus.config_write(PCI_INTERRUPT_LINE, 1, 11);
    CHECK(rig.bus.config_read(PCI_INTERRUPT_LINE, 1) == 11);
}

TEST_CASE("BARs size with the all-ones protocol and match what the owner is told") {
    PciRig rig;
    rig.driver.enumerate();
    const auto bars = rig.transport->bars();
    REQUIRE(bars.size() == 2);
    for (const auto& info : bars) {
        const auto& seen = rig.driver.bar(info.index);
        CHECK(seen.size == info.size);
        CHECK(seen.is_64bit);
        CHECK((info.size & (info.size - 1)) == 0);
        REQUIRE(info.address);
        CHECK(*info.address == seen.address);
    }
    CHECK(bars[0].index == 0);
    CHECK_FALSE(rig.driver.bar(0).prefetchable);
    CHECK(bars[1].index == 2);
    CHECK(rig.driver.bar(2).prefetchable);
    // Room for both regions (4 MiB, then 64 KiB at the next 2 MiB boundary).
    CHECK(bars[1].size == (8u << 20));
    // Unimplemented BARs size to nothing.
    for (uint8_t i : {4, 5}) {
        rig.bus.config_write(PCI_BASE_ADDRESS_0 + 4 * i, 4, 0xffffffff);
        CHECK(rig.bus.config_read(PCI_BASE_ADDRESS_0 + 4 * i, 4) == 0);
        CHECK(rig.driver.bar(i).size == 0);
    }
    // No expansion ROM.
    rig.bus.config_write(PCI_ROM_ADDRESS, 4, 0xffffffff);
    CHECK(rig.bus.config_read(PCI_ROM_ADDRESS, 4) == 0);
}

TEST_CASE("BAR placement and decoding changes reach the owner's listener") {
    PciRig rig;
    rig.driver.enumerate();
    // Sizing runs with decoding off, so the first events are the final placements.
    REQUIRE(rig.bar_events.size() == 2);
    CHECK(rig.bar_events[0].address == rig.driver.bar(0).address);
    CHECK(rig.bar_events[1].address == rig.driver.bar(2).address);

    rig.bar_events.clear();
    rig.driver.move_bar(2, 0x40'0000'0000);
    // Decoding off (both BARs vanish), the move itself is invisible, decoding back on.
    REQUIRE(rig.bar_events.size() == 4);
    CHECK_FALSE(rig.bar_events[0].address);
    CHECK_FALSE(rig.bar_events[1].address);
    CHECK(rig.bar_events[2].index == 0);
    CHECK(rig.bar_events[3].index == 2);
    CHECK(rig.bar_events[3].address == 0x40'0000'0000);
    CHECK(rig.bar_events[3].prefetchable);

    // A 64-bit BAR with decoding on moves in two steps: the owner sees both halves land.
    rig.bar_events.clear();
    rig.bus.config_write(PCI_BASE_ADDRESS_0, 4, 0x8000'0000);
    REQUIRE(rig.bar_events.size() == 1);
    CHECK(rig.bar_events[0].address == 0x8000'0000);
}

TEST_CASE("the capability walk finds every virtio structure in range") {
    PciRig rig;
    rig.probe();
    auto& driver = rig.driver;
    CHECK(driver.virtio_device_id() == VIRTIO_ID_FS);
    CHECK(driver.notify_multiplier() == 4);
    REQUIRE(driver.device_config());
    CHECK(driver.device_config()->length == test::EchoDevice::kConfigSize);
    CHECK(driver.find_virtio_capability(VIRTIO_PCI_CAP_PCI_CFG) != 0);
    CHECK(driver.msix_table_size() == 3);  // two queues and the config vector

    // The notify addresses the owner binds to ioeventfds are the driver's doorbells.
    const auto doorbells = rig.transport->notify_addresses();
    REQUIRE(doorbells.size() == 2);
    for (const auto& d : doorbells) {
        driver.common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, d.queue);
        CHECK(d.offset % 4 == 0);
        CHECK(d.bar == 0);
    }
    CHECK(doorbells[1].offset - doorbells[0].offset == driver.notify_multiplier());
}

TEST_CASE("shared memory regions are found as Linux finds them") {
    PciRig rig;
    rig.probe();
    const auto placements = rig.transport->shared_memory();
    REQUIRE(placements.size() == 2);
    for (const auto& p : placements) {
        auto region = rig.driver.shm_region(p.id);
        REQUIRE(region);
        CHECK(region->length == p.size);
        CHECK(region->address == rig.driver.bar(p.bar).address + p.offset);
        CHECK(p.offset % (2 << 20) == 0);
    }
    CHECK(placements[0].size == (4u << 20));
    CHECK(placements[1].size == (64u << 10));
    CHECK_FALSE(rig.driver.shm_region(7));
}

TEST_CASE("a device without shared memory has no second BAR") {
    test::EchoDevice::Options options;
    options.shared_memory.clear();
    PciRig rig(options);
    rig.probe();
    CHECK(rig.transport->bars().size() == 1);
    CHECK(rig.driver.bar(2).size == 0);
    CHECK_FALSE(rig.driver.shm_region(0));
}

TEST_CASE("the PCI_CFG window reaches BAR registers from configuration space") {
    PciRig rig;
    rig.probe();
    const uint8_t cap = rig.driver.find_virtio_capability(VIRTIO_PCI_CAP_PCI_CFG);
    REQUIRE(cap != 0);
    const uint16_t data = cap + offsetof(virtio_pci_cfg_cap, pci_cfg_data);
    const auto& common = rig.driver.common();
    rig.bus.config_write(cap + VIRTIO_PCI_CAP_BAR, 1, common.bar);
    rig.bus.config_write(cap + VIRTIO_PCI_CAP_OFFSET, 4, common.offset + VIRTIO_PCI_COMMON_NUMQ);
    rig.bus.config_write(cap + VIRTIO_PCI_CAP_LENGTH, 4, 2);
    CHECK(rig.bus.config_read(data, 4) == 2);

    rig.bus.config_write(cap + VIRTIO_PCI_CAP_OFFSET, 4, common.offset + VIRTIO_PCI_COMMON_STATUS);
    rig.bus.config_write(cap + VIRTIO_PCI_CAP_LENGTH, 4, 1);
    rig.bus.config_write(data, 4, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    CHECK(rig.driver.status() == VIRTIO_CONFIG_S_ACKNOWLEDGE);

    // A length the window does not do is ignored.
    rig.bus.config_write(cap + VIRTIO_PCI_CAP_LENGTH, 4, 3);
    rig.bus.config_write(data, 4, 0);
    CHECK(rig.driver.status() == VIRTIO_CONFIG_S_ACKNOWLEDGE);
}

TEST_CASE("creation refuses devices the transport cannot present") {
    auto refused = [](test::EchoDevice::Options options) {
        test::EchoDevice device(std::move(options));
        test::TestMemory ram;
        test::RecordingSink sink;
        return !pci::VirtioPciTransport::create(device, ram.memory(), sink).has_value();
    };
    test::EchoDevice::Options no_version;
    no_version.features = virtio::kRingFeatures;
    CHECK(refused(no_version));
    test::EchoDevice::Options no_queues;
    no_queues.max_sizes.clear();
    CHECK(refused(no_queues));
    test::EchoDevice::Options zero_queue;
    zero_queue.max_sizes = {0};
    CHECK(refused(zero_queue));
    test::EchoDevice::Options duplicate_region;
    duplicate_region.shared_memory = {{0, 4096}, {0, 4096}};
    CHECK(refused(duplicate_region));
    test::EchoDevice::Options empty_region;
    empty_region.shared_memory = {{0, 0}};
    CHECK(refused(empty_region));
    test::EchoDevice::Options crowded;
    crowded.shared_memory = {{0, 4096}, {1, 4096}, {2, 4096}, {3, 4096}};
    CHECK(refused(crowded));
}
