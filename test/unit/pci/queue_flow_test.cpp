// SPDX-License-Identifier: Apache-2.0
// A request through the transport: driver rings, doorbell, echo device, used ring, interrupt.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "packed/packed_driver.hpp"
#include "pci_rig.hpp"
#include "split/split_driver.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using vfsdax::test::PciRig;
using vfsdax::test::VirtioPciDriver;
using virtio::feature_bit;

namespace {

constexpr uint16_t kQueue = 1;
constexpr uint16_t kSize = 64;

test::VirtioPciDriver::QueueRings rings(const test::SplitDriver& ring) {
    return {ring.layout().desc, ring.layout().avail, ring.layout().used};
}
test::VirtioPciDriver::QueueRings rings(const test::PackedDriver& ring) {
    return {ring.layout().desc, ring.layout().driver, ring.layout().device};
}

// Sets the device up as Linux would (optionally with MSI-X: config vector 0, queue vector 2),
// sends one request and returns the reply the device wrote.
template <typename Ring>
std::string echo_once(PciRig& rig, Ring& ring, uint64_t features, bool msix) {
    auto& d = rig.driver;
    d.reset();
    if (msix) {
        d.enable_msix(3);
        REQUIRE(d.set_config_vector(0) == 0);
    }
    REQUIRE(d.negotiate(features));
    REQUIRE(d.setup_queue(kQueue, kSize, rings(ring)) == kSize);
    if (msix) REQUIRE(d.set_queue_vector(kQueue, 2) == 2);
    d.enable_queue(kQueue);
    d.driver_ok();
    REQUIRE(d.status() == (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                           VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK));

    const std::string request = "through the transport";
    auto in = ring.alloc_buffer(static_cast<uint32_t>(request.size()));
    std::memcpy(rig.ram.raw(in.addr, request.size()), request.data(), request.size());
    auto out = ring.alloc_buffer(64);
    const decltype(in) readable[] = {in};
    const decltype(out) writable[] = {out};
    REQUIRE(ring.add(readable, writable));
    ring.publish();
    REQUIRE(ring.kick_needed());
    d.kick(kQueue);

    auto used = ring.get_used();
    REQUIRE(used);
    REQUIRE(used->len == request.size());
    return std::string(reinterpret_cast<const char*>(rig.ram.raw(out.addr, used->len)), used->len);
}

}  // namespace

TEST_CASE("split ring: a request echoes and the queue's MSI-X vector fires") {
    PciRig rig;
    rig.probe();
    const uint64_t features = feature_bit(VIRTIO_F_VERSION_1);
    test::SplitDriver ring(rig.ram, kSize, features);
    CHECK(echo_once(rig, ring, features, true) == "through the transport");
    const auto msis = rig.sink.take_msis();
    REQUIRE(msis.size() == 1);
    CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 2);
    CHECK_FALSE(rig.sink.intx());
}

TEST_CASE("packed ring: a request echoes and the queue's MSI-X vector fires") {
    PciRig rig;
    rig.probe();
    const uint64_t features = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_RING_PACKED);
    test::PackedDriver ring(rig.ram, kSize, features);
    CHECK(echo_once(rig, ring, features, true) == "through the transport");
    const auto msis = rig.sink.take_msis();
    REQUIRE(msis.size() == 1);
    CHECK(msis[0].data == VirtioPciDriver::kMsiDataBase + 2);
}

TEST_CASE("without MSI-X the used buffer raises INTx with ISR bit 0") {
    PciRig rig;
    rig.probe();
    const uint64_t features = feature_bit(VIRTIO_F_VERSION_1);
    test::SplitDriver ring(rig.ram, kSize, features);
    CHECK(echo_once(rig, ring, features, false) == "through the transport");
    CHECK(rig.sink.intx());
    CHECK(rig.driver.read_isr() == 1);
    CHECK_FALSE(rig.sink.intx());
    CHECK(rig.sink.take_msis().empty());
}

TEST_CASE("after a reset the driver re-initialises on fresh rings of the other layout") {
    PciRig rig;
    rig.probe();
    const uint64_t split_features = feature_bit(VIRTIO_F_VERSION_1);
    test::SplitDriver split(rig.ram, kSize, split_features);
    CHECK(echo_once(rig, split, split_features, true) == "through the transport");
    const uint64_t packed_features = split_features | feature_bit(VIRTIO_F_RING_PACKED);
    test::PackedDriver packed(rig.ram, kSize, packed_features);
    CHECK(echo_once(rig, packed, packed_features, true) == "through the transport");
    CHECK(rig.device.activations() == 2);
    CHECK(rig.device.resets() >= 1);
}

TEST_CASE("the owner's ioeventfd path kicks the same queue") {
    PciRig rig;
    rig.probe();
    auto& d = rig.driver;
    const uint64_t features = feature_bit(VIRTIO_F_VERSION_1);
    test::SplitDriver ring(rig.ram, kSize, features);
    REQUIRE(d.negotiate(features));
    REQUIRE(d.setup_queue(kQueue, kSize, rings(ring)) == kSize);
    d.enable_queue(kQueue);
    d.driver_ok();
    auto out = ring.alloc_buffer(8);
    auto in = ring.alloc_buffer(8);
    const test::DriverBuffer readable[] = {in};
    const test::DriverBuffer writable[] = {out};
    REQUIRE(ring.add(readable, writable));
    ring.publish();
    const auto doorbell = rig.transport->notify_addresses().at(kQueue);
    CHECK(doorbell.queue == kQueue);
    rig.transport->notify(doorbell.queue, 0);
    auto used = ring.get_used();
    REQUIRE(used);
    CHECK(used->len == 8);
}
