// SPDX-License-Identifier: Apache-2.0
// Interrupts: MSI-X messages, vector and function masking, pending bits, INTx with the ISR.
#include <linux/pci_regs.h>

#include <catch2/catch.hpp>

#include "pci_rig.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using vfsdax::test::PciRig;
using vfsdax::test::VirtioPciDriver;
using virtio::feature_bit;

namespace {

// A live device: features negotiated, no queues, DRIVER_OK.
void start(PciRig& rig) {
    rig.probe();
    REQUIRE(rig.driver.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    rig.driver.driver_ok();
    REQUIRE(rig.device.activations() == 1);
}

}  // namespace

TEST_CASE("MSI-X: a config change sends the config vector's message") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    d.enable_msix(3);
    REQUIRE(d.set_config_vector(2) == 2);
    REQUIRE(d.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    d.driver_ok();
    const uint8_t generation = d.config_generation();
    rig.device.change_config(0, 1);
    const auto msis = rig.sink.take_msis();
    REQUIRE(msis.size() == 1);
    CHECK(msis[0].address == VirtioPciDriver::kMsiAddress);
    CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 2);
    CHECK(d.config_generation() == static_cast<uint8_t>(generation + 1));
    CHECK_FALSE(rig.sink.intx());
}

TEST_CASE("MSI-X: masked vectors collect a pending bit and fire on unmask") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    d.enable_msix(3);
    REQUIRE(d.set_config_vector(1) == 1);
    REQUIRE(d.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    d.driver_ok();

    SECTION("per-vector mask") {
        d.mask_vector(1, true);
        rig.device.change_config(0, 1);
        rig.device.change_config(0, 2);
        CHECK(rig.sink.take_msis().empty());
        CHECK(d.vector_pending(1));
        CHECK_FALSE(d.vector_pending(0));
        d.mask_vector(1, false);
        const auto msis = rig.sink.take_msis();
        REQUIRE(msis.size() == 1);  // one pending bit, one message
        CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 1);
        CHECK_FALSE(d.vector_pending(1));
    }
    SECTION("function mask") {
        d.mask_function(true);
        rig.device.change_config(0, 1);
        CHECK(rig.sink.take_msis().empty());
        CHECK(d.vector_pending(1));
        d.mask_function(false);
        CHECK(rig.sink.take_msis().size() == 1);
        CHECK_FALSE(d.vector_pending(1));
    }
    SECTION("a message reprogrammed while masked leaves with the new contents") {
        d.mask_vector(1, true);
        rig.device.change_config(0, 1);
        d.enable_msix(3);  // reprograms all entries, then unmasks them
        const auto msis = rig.sink.take_msis();
        REQUIRE(msis.size() == 1);
        CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 1);
    }
}

TEST_CASE("MSI-X: a vector without an entry or NO_VECTOR sends nothing") {
    PciRig rig;
    rig.probe();
    rig.driver.enable_msix(3);
    REQUIRE(rig.driver.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    rig.driver.driver_ok();
    rig.device.change_config(0, 1);  // msix_config is NO_VECTOR
    CHECK(rig.sink.take_msis().empty());
    CHECK_FALSE(rig.sink.intx());
}

TEST_CASE("INTx: ISR bits, read-to-clear, the status bit and INTx disable") {
    PciRig rig;
    start(rig);
    auto& d = rig.driver;
    rig.device.change_config(0, 1);
    CHECK(rig.sink.intx());
    CHECK((rig.bus.config_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) != 0);
    CHECK(rig.sink.take_msis().empty());
    CHECK(d.read_isr() == VIRTIO_PCI_ISR_CONFIG);
    CHECK_FALSE(rig.sink.intx());
    CHECK((rig.bus.config_read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) == 0);
    CHECK(d.read_isr() == 0);

    SECTION("INTx disabled: the ISR still records, the pin stays low until re-enabled") {
        const uint32_t command = rig.bus.config_read(PCI_COMMAND, 2);
        rig.bus.config_write(PCI_COMMAND, 2, command | PCI_COMMAND_INTX_DISABLE);
        rig.device.change_config(0, 2);
        CHECK_FALSE(rig.sink.intx());
        rig.bus.config_write(PCI_COMMAND, 2, command);
        CHECK(rig.sink.intx());
        CHECK(d.read_isr() == VIRTIO_PCI_ISR_CONFIG);
        CHECK_FALSE(rig.sink.intx());
    }
    SECTION("enabling MSI-X takes the pin down") {
        rig.device.change_config(0, 2);
        CHECK(rig.sink.intx());
        d.enable_msix(3);
        CHECK_FALSE(rig.sink.intx());
    }
    SECTION("what MSI-X delivered is not raised again on the pin when MSI-X goes off") {
        d.enable_msix(3);
        REQUIRE(d.set_config_vector(0) == 0);
        rig.device.change_config(0, 2);
        CHECK(rig.sink.take_msis().size() == 1);
        d.disable_msix();
        CHECK_FALSE(rig.sink.intx());
        CHECK(d.read_isr() == 0);
        // Later events use the pin again.
        rig.device.change_config(0, 3);
        CHECK(rig.sink.intx());
        CHECK(d.read_isr() == VIRTIO_PCI_ISR_CONFIG);
    }
}

TEST_CASE("needs_reset raises a configuration interrupt") {
    PciRig rig;
    start(rig);
    rig.device.break_device();
    CHECK(rig.sink.intx());
    CHECK((rig.driver.read_isr() & VIRTIO_PCI_ISR_CONFIG) != 0);
    CHECK((rig.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
}

TEST_CASE("reset drops pending interrupts and vectors but keeps the MSI-X table") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    d.enable_msix(3);
    REQUIRE(d.set_config_vector(1) == 1);
    REQUIRE(d.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    d.driver_ok();
    d.mask_vector(1, true);
    rig.device.change_config(0, 1);
    REQUIRE(d.vector_pending(1));
    d.reset();
    CHECK_FALSE(d.vector_pending(1));
    CHECK(d.common_read(VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_MSI_NO_VECTOR);
    d.mask_vector(1, false);
    CHECK(rig.sink.take_msis().empty());
    // After reset no device signal gets through until DRIVER_OK.
    rig.device.change_config(0, 2);
    CHECK(rig.sink.take_msis().empty());
    REQUIRE(d.set_config_vector(1) == 1);
    REQUIRE(d.negotiate(feature_bit(VIRTIO_F_VERSION_1)));
    d.driver_ok();
    rig.device.change_config(0, 3);
    const auto msis = rig.sink.take_msis();
    REQUIRE(msis.size() == 1);
    CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 1);  // the entry survived
}

TEST_CASE("describe(): the device status and the interrupt state") {
    PciRig rig;
    start(rig);
    auto& d = rig.driver;
    const auto first_line = [&rig] {
        const std::vector<std::string> lines = rig.transport->describe();
        REQUIRE(lines.size() == 1);  // the echo device adds none
        return lines[0];
    };
    CHECK(first_line() == "device status 0x0f, ISR 0x00, INTx low, MSI-X off");
    rig.device.change_config(0, 1);
    CHECK(first_line() == "device status 0x0f, ISR 0x02, INTx high, MSI-X off");
    CHECK(d.read_isr() == VIRTIO_PCI_ISR_CONFIG);

    d.enable_msix(3);
    REQUIRE(d.set_config_vector(1) == 1);
    d.mask_function(true);
    rig.device.change_config(0, 2);
    CHECK(first_line() ==
          "device status 0x0f, ISR 0x02, INTx low, MSI-X on (function masked), 1 MSI-X messages "
          "pending");
}
