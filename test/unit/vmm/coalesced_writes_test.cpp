// SPDX-License-Identifier: Apache-2.0
// CoalescedWrites: buffered writes reach the right bus and device in order, around the ring.
#include "coalesced_writes.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "pci_host.hpp"

using namespace vfsdax::vmm;

namespace {

constexpr std::size_t kPage = 4096;
// (4096 - 8) / 24
constexpr uint32_t kCapacity = 170;

struct Recorder : BusDevice {
    std::string name;
    std::vector<std::string>* log;
    Recorder(std::string n, std::vector<std::string>* l) : name(std::move(n)), log(l) {}
    void read(uint64_t, std::span<std::byte> data) override {
        std::fill(data.begin(), data.end(), std::byte{0});
    }
    void write(uint64_t offset, std::span<const std::byte> data) override {
        uint64_t value = 0;
        std::memcpy(&value, data.data(), std::min(data.size(), sizeof(value)));
        log->push_back(name + "+" + std::to_string(offset) + "=" + std::to_string(value) + "/" +
                       std::to_string(data.size()));
    }
};

// The page KVM shares, with KVM's side played here: append an entry, then publish it.
struct Ring {
    alignas(8) std::byte page[kPage]{};
    kvm_coalesced_mmio_ring* ring() { return reinterpret_cast<kvm_coalesced_mmio_ring*>(page); }
    void append(uint64_t addr, uint32_t len, uint64_t value, bool pio) {
        // Past the header, as KVM lays it out (the flexible array has no bounds to index).
        auto* entries =
            reinterpret_cast<kvm_coalesced_mmio*>(page + sizeof(kvm_coalesced_mmio_ring));
        kvm_coalesced_mmio& e = entries[ring()->last];
        e.phys_addr = addr;
        e.len = len;
        e.pio = pio;
        std::memcpy(e.data, &value, sizeof(value));
        ring()->last = (ring()->last + 1) % kCapacity;
    }
};

}  // namespace

TEST_CASE("buffered writes are replayed in order to the PIO or MMIO bus") {
    std::vector<std::string> log;
    Bus pio, mmio;
    REQUIRE(pio.insert(0xcf8, 4, std::make_shared<Recorder>("cf8", &log)));
    REQUIRE(mmio.insert(0xd0000000, 0x1000, std::make_shared<Recorder>("bar", &log)));
    Ring ring;
    CoalescedWrites writes(ring.ring(), kPage);

    writes.drain(pio, mmio);
    CHECK(log.empty());

    ring.append(0xcf8, 4, 0x80000010, true);
    ring.append(0xd0000010, 2, 0xbeef, false);
    ring.append(0xcfb, 1, 0x01, true);
    ring.append(0x70, 1, 0x0a, true);  // nobody there: dropped
    writes.drain(pio, mmio);
    CHECK(log == std::vector<std::string>{"cf8+0=2147483664/4", "bar+16=48879/2", "cf8+3=1/1"});
    CHECK(ring.ring()->first == 4);
    CHECK(ring.ring()->first == ring.ring()->last);

    log.clear();
    writes.drain(pio, mmio);
    CHECK(log.empty());
}

TEST_CASE("the ring wraps around at its capacity") {
    std::vector<std::string> log;
    Bus pio, mmio;
    REQUIRE(pio.insert(0xcf8, 4, std::make_shared<Recorder>("cf8", &log)));
    Ring ring;
    CoalescedWrites writes(ring.ring(), kPage);
    for (uint32_t round = 0; round < 3; ++round) {
        for (uint32_t i = 0; i < kCapacity - 1; ++i) ring.append(0xcf8, 4, i, true);
        writes.drain(pio, mmio);
        REQUIRE(log.size() == kCapacity - 1);
        CHECK(log.front() == "cf8+0=0/4");
        CHECK(log.back() == "cf8+0=" + std::to_string(kCapacity - 2) + "/4");
        CHECK(ring.ring()->first == ring.ring()->last);
        log.clear();
    }
    CHECK(ring.ring()->first == (3 * (kCapacity - 1)) % kCapacity);
}

TEST_CASE("a buffered address write reaches the PCI host bridge before the data read") {
    Bus pio, mmio;
    auto bridge = std::make_shared<PciHostBridge>([](uint32_t, bool) {});
    REQUIRE(pio.insert(0xcf8, 8, bridge));
    Ring ring;
    CoalescedWrites writes(ring.ring(), kPage);
    // Bus 0, device 0, function 0, register 0: the host bridge's vendor and device IDs.
    ring.append(0xcf8, 4, 0x80000000, true);
    writes.drain(pio, mmio);
    uint32_t id = 0;
    REQUIRE(pio.read(0xcfc, std::as_writable_bytes(std::span(&id, 1))));
    CHECK(id == 0x00081b36);
    // Without the replay the latch would still select register 0; this one is the class code.
    ring.append(0xcf8, 4, 0x80000008, true);
    writes.drain(pio, mmio);
    REQUIRE(pio.read(0xcfc, std::as_writable_bytes(std::span(&id, 1))));
    CHECK(id >> 8 == 0x060000);
}
