// SPDX-License-Identifier: Apache-2.0
// Common configuration: status machine, feature negotiation, queue registers, reset, config space.
#include <catch2/catch.hpp>

#include "pci_rig.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using vfsdax::test::EchoDevice;
using vfsdax::test::PciRig;
using virtio::feature_bit;

namespace {

constexpr uint64_t kVersion1 = feature_bit(VIRTIO_F_VERSION_1);
constexpr uint64_t kPacked = feature_bit(VIRTIO_F_RING_PACKED);
constexpr uint64_t kRingReset = feature_bit(VIRTIO_F_RING_RESET);
constexpr uint8_t kDriverOk = VIRTIO_CONFIG_S_DRIVER_OK;
constexpr uint8_t kFeaturesOk = VIRTIO_CONFIG_S_FEATURES_OK;

// Valid rings for queue `index` (addresses only: the device checks them at DRIVER_OK).
test::VirtioPciDriver::QueueRings rings(test::TestMemory& ram) {
    return {ram.alloc(16 * 256, 16), ram.alloc(6 + 2 * 256, 4), ram.alloc(6 + 8 * 256, 4)};
}

}  // namespace

TEST_CASE("the device offers exactly the device's features, 64 bits wide") {
    PciRig rig;
    rig.probe();
    CHECK(rig.driver.device_features() == EchoDevice::kDefaultFeatures);
    // Feature words beyond the second read as zero.
    rig.driver.common_write(VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
    CHECK(rig.driver.common_read(VIRTIO_PCI_COMMON_DF, 4) == 0);
}

TEST_CASE("FEATURES_OK holds only for a subset of the offer that includes VERSION_1") {
    PciRig rig;
    rig.probe();
    SECTION("a subset with VERSION_1") {
        CHECK(rig.driver.negotiate(kVersion1 | kPacked));
        rig.driver.common_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
        CHECK(rig.driver.common_read(VIRTIO_PCI_COMMON_GF, 4) == (kVersion1 | kPacked) >> 32);
    }
    SECTION("a feature the device does not offer") {
        CHECK_FALSE(rig.driver.negotiate(~uint64_t{0}, feature_bit(50)));
    }
    SECTION("a legacy driver that omits VERSION_1") {
        CHECK_FALSE(rig.driver.negotiate(EchoDevice::kDefaultFeatures & ~kVersion1));
    }
    SECTION("features are frozen once accepted") {
        REQUIRE(rig.driver.negotiate(kVersion1));
        rig.driver.common_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
        rig.driver.common_write(VIRTIO_PCI_COMMON_GF, 4, 0xffffffff);
        CHECK(rig.driver.common_read(VIRTIO_PCI_COMMON_GF, 4) == 0);
    }
}

TEST_CASE("device_status only grows, in order") {
    PciRig rig;
    rig.probe();
    rig.driver.add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    SECTION("clearing a bit is ignored") {
        rig.driver.common_write(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        CHECK(rig.driver.status() == (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER));
    }
    SECTION("DRIVER_OK without FEATURES_OK does not start the device") {
        rig.driver.add_status(kDriverOk);
        CHECK((rig.driver.status() & kDriverOk) == 0);
        CHECK(rig.device.activations() == 0);
    }
    SECTION("the driver cannot set NEEDS_RESET") {
        rig.driver.add_status(VIRTIO_CONFIG_S_NEEDS_RESET);
        CHECK((rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET) == 0);
    }
}

TEST_CASE("queue registers: sizes, vectors, notify offsets") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.num_queues() == 2);
    SECTION("split: power-of-two sizes up to the maximum") {
        REQUIRE(d.negotiate(kVersion1));
        CHECK(d.queue_max_size(0) == 256);
        for (uint16_t bad : {0, 100, 512, 0xffff}) {
            d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, bad);
            CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 256);
        }
        d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 64);
    }
    SECTION("packed: any size up to the maximum") {
        REQUIRE(d.negotiate(kVersion1 | kPacked));
        d.queue_max_size(1);
        d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 100);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 100);
        d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 257);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 100);
    }
    SECTION("each queue has its own notify offset") {
        d.common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_NOFF, 2) == 1);
    }
    SECTION("vectors: NO_VECTOR by default and for a vector beyond the table") {
        d.common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_MSI_NO_VECTOR);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_MSI_NO_VECTOR);
        CHECK(d.set_queue_vector(0, 2) == 2);
        CHECK(d.set_queue_vector(0, 3) == VIRTIO_MSI_NO_VECTOR);
        CHECK(d.set_config_vector(0) == 0);
        CHECK(d.set_config_vector(1000) == VIRTIO_MSI_NO_VECTOR);
    }
    SECTION("queue_select beyond num_queues: a queue that does not exist") {
        d.common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, 2);
        d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
        d.common_write(VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
        d.common_write(VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
        d.common_write(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SELECT, 2) == 2);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 0);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_DESCLO, 4) == 0);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_MSI_NO_VECTOR);
        CHECK_FALSE(d.setup_queue(2, 16, rings(rig.ram)));
        CHECK(d.queue_max_size(0) == 256);  // the real queues are untouched
    }
    SECTION("an enabled queue's layout is fixed") {
        REQUIRE(d.negotiate(kVersion1));
        REQUIRE(d.setup_queue(0, 64, rings(rig.ram)) == 64);
        d.enable_queue(0);
        d.common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
        d.common_write(VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0);
        d.common_write(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2) == 64);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_DESCLO, 4) != 0);
        CHECK(d.queue_enabled(0));
    }
}

TEST_CASE("DRIVER_OK activates the device with the enabled queues") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.negotiate(kVersion1 | feature_bit(VIRTIO_RING_F_EVENT_IDX)));
    REQUIRE(d.setup_queue(1, 128, rings(rig.ram)));
    d.enable_queue(1);
    d.driver_ok();
    CHECK(d.status() ==
          (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | kFeaturesOk | kDriverOk));
    CHECK(rig.device.activations() == 1);
    CHECK(rig.device.features() == (kVersion1 | feature_bit(VIRTIO_RING_F_EVENT_IDX)));
    CHECK_FALSE(rig.device.has_queue(0));
    CHECK(rig.device.has_queue(1));
    SECTION("kicks reach the device only for live queues") {
        d.kick(1);
        d.kick(0);
        rig.transport->notify(1, 0);
        rig.transport->notify(9, 0);
        const auto kicks = rig.device.kicks();
        REQUIRE(kicks.size() == 2);
        CHECK(kicks[0].queue == 1);
        CHECK(kicks[0].data == 0);  // NOTIFICATION_DATA not negotiated
        CHECK(kicks[1].queue == 1);
    }
    SECTION("reset returns every register to its default, then the device re-initialises") {
        d.reset();
        CHECK(rig.device.resets() == 1);
        CHECK_FALSE(rig.device.active());
        CHECK(d.queue_max_size(1) == 256);
        CHECK_FALSE(d.queue_enabled(1));
        CHECK(d.common_read(VIRTIO_PCI_COMMON_Q_DESCLO, 4) == 0);
        d.common_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
        CHECK(d.common_read(VIRTIO_PCI_COMMON_GF, 4) == 0);
        d.kick(1);
        CHECK(rig.device.kicks().empty());

        REQUIRE(d.negotiate(kVersion1 | kPacked));
        REQUIRE(d.setup_queue(0, 64, rings(rig.ram)));
        d.enable_queue(0);
        d.driver_ok();
        CHECK(rig.device.activations() == 2);
        CHECK(rig.device.has_queue(0));
        CHECK_FALSE(rig.device.has_queue(1));
    }
}

TEST_CASE("with NOTIFICATION_DATA the device gets the driver's 32-bit value") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.negotiate(kVersion1 | feature_bit(virtio::kFeatureNotificationData)));
    REQUIRE(d.setup_queue(0, 16, rings(rig.ram)));
    d.enable_queue(0);
    d.driver_ok();
    d.kick_with_data(0, 0x0005'0000);
    const auto kicks = rig.device.kicks();
    REQUIRE(kicks.size() == 1);
    CHECK(kicks[0].data == 0x0005'0000);
}

TEST_CASE("a queue with unusable ring addresses makes the device need a reset") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    d.enable_msix(3);
    REQUIRE(d.set_config_vector(0) == 0);
    REQUIRE(d.negotiate(kVersion1));
    std::string reason;
    SECTION("rings outside guest memory") {
        REQUIRE(d.setup_queue(
            0, 16, {GuestAddress(0xdead'0000'0000), rig.ram.alloc(64), rig.ram.alloc(256)}));
        reason = "queue 0 at DRIVER_OK: ring or buffer address outside guest memory";
    }
    SECTION("a misaligned descriptor table") {
        REQUIRE(d.setup_queue(
            0, 16, {GuestAddress(rig.ram.base() + 1), rig.ram.alloc(64), rig.ram.alloc(256)}));
        reason = "queue 0 at DRIVER_OK: unusable queue configuration";
    }
    d.enable_queue(0);
    rig.sink.take_msis();
    d.driver_ok();
    CHECK((d.status() & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
    CHECK(rig.reset_reasons == std::vector<std::string>{reason});
    CHECK(rig.device.activations() == 0);
    const auto msis = rig.sink.take_msis();
    REQUIRE(msis.size() == 1);
    CHECK(msis[0].data == test::VirtioPciDriver::kMsiDataBase + 0);
    // A device that never started is not kicked.
    d.kick(0);
    CHECK(rig.device.kicks().empty());
    d.reset();
    CHECK(d.status() == 0);
}

TEST_CASE("a device that refuses activation needs a reset") {
    EchoDevice::Options options;
    options.activation_error = "no backend";
    PciRig rig(options);
    rig.probe();
    REQUIRE(rig.driver.negotiate(kVersion1));
    REQUIRE(
        rig.driver.setup_queue(0, 16, {rig.ram.alloc(256), rig.ram.alloc(64), rig.ram.alloc(256)}));
    rig.driver.enable_queue(0);
    rig.driver.driver_ok();
    CHECK((rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
    CHECK(rig.reset_reasons == std::vector<std::string>{"the device refused to start: no backend"});
    // Its queues were never handed over: a kick must not reach it.
    rig.driver.kick(0);
    CHECK(rig.device.kicks().empty());
}

TEST_CASE("a device that breaks while running shows NEEDS_RESET") {
    PciRig rig;
    rig.probe();
    REQUIRE(rig.driver.negotiate(kVersion1));
    rig.driver.driver_ok();
    rig.device.break_device();
    CHECK((rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
    CHECK(rig.reset_reasons == std::vector<std::string>{"echo: broken on purpose"});
    rig.driver.reset();
    CHECK(rig.driver.status() == 0);
}

TEST_CASE("device configuration: access through the device capability, generation bumps") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    d.write_device_config(0, 4, 0x04030201);
    CHECK(d.read_device_config(0, 1) == 0x01);
    CHECK(d.read_device_config(2, 2) == 0x0403);
    const uint8_t before = d.config_generation();
    d.write_device_config(4, 1, 7);  // the driver's own write is no device change
    CHECK(d.config_generation() == before);
    rig.device.change_config(5, 9);
    CHECK(d.config_generation() == static_cast<uint8_t>(before + 1));
    CHECK(d.read_device_config(4, 2) == 0x0907);
    // Before DRIVER_OK a change interrupts nobody.
    CHECK(rig.sink.take_msis().empty());
    CHECK_FALSE(rig.sink.intx());
}

TEST_CASE("VIRTIO_F_RING_RESET resets and re-enables one queue of a live device") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.negotiate(kVersion1 | kRingReset));
    REQUIRE(d.setup_queue(0, 32, rings(rig.ram)));
    d.enable_queue(0);
    REQUIRE(d.setup_queue(1, 32, rings(rig.ram)));
    d.enable_queue(1);
    d.driver_ok();
    REQUIRE(rig.device.has_queue(1));

    d.reset_queue(1);
    CHECK(rig.device.queue_resets() == std::vector<uint16_t>{1});
    CHECK_FALSE(rig.device.has_queue(1));
    CHECK_FALSE(d.queue_enabled(1));
    CHECK(d.queue_max_size(1) == 256);
    d.kick(1);
    CHECK(rig.device.kicks().empty());

    REQUIRE(d.setup_queue(1, 16, rings(rig.ram)) == 16);
    d.enable_queue(1);
    CHECK(rig.device.has_queue(1));
    CHECK(rig.device.has_queue(0));
    CHECK(rig.device.activations() == 1);
}

TEST_CASE("without VIRTIO_F_RING_RESET queue_reset does nothing") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    REQUIRE(d.negotiate(kVersion1));
    REQUIRE(d.setup_queue(0, 32, rings(rig.ram)));
    d.enable_queue(0);
    d.driver_ok();
    d.reset_queue(0);
    CHECK(rig.device.queue_resets().empty());
    CHECK(d.queue_enabled(0));
    CHECK(rig.device.has_queue(0));
}
