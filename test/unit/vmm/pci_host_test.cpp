// SPDX-License-Identifier: Apache-2.0
// Type-1 configuration access: address decoding, the host bridge function, device slots, INTx.
#include "pci_host.hpp"

#include <linux/pci_regs.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "layout.hpp"

using namespace vfsdax::vmm;

namespace {

uint32_t config_address(unsigned device, unsigned reg, unsigned bus = 0, unsigned function = 0) {
    return 0x80000000u | bus << 16 | device << 11 | function << 8 | reg;
}

struct Recorder : PciFunction {
    std::vector<std::pair<uint16_t, std::size_t>> reads, writes;
    uint32_t last_value = 0;
    void read_config(uint16_t offset, std::span<std::byte> data) override {
        reads.emplace_back(offset, data.size());
        std::memset(data.data(), 0x42, data.size());
    }
    void write_config(uint16_t offset, std::span<const std::byte> data) override {
        writes.emplace_back(offset, data.size());
        last_value = 0;
        std::memcpy(&last_value, data.data(), data.size());
    }
};

void no_gsi(uint32_t, bool) {}

struct Host {
    PciHostBridge bridge{no_gsi};
    void set_address(uint32_t a) { bridge.write(0, std::as_bytes(std::span(&a, 1))); }
    uint32_t read(unsigned offset, std::size_t width) {
        uint32_t v = 0;
        bridge.read(offset, std::span(reinterpret_cast<std::byte*>(&v), width));
        return v;
    }
    void write(unsigned offset, uint32_t v, std::size_t width) {
        bridge.write(offset, std::span(reinterpret_cast<const std::byte*>(&v), width));
    }
};

}  // namespace

TEST_CASE("CONFIG_ADDRESS decodes enable, bus, device, function and register") {
    const auto a = PciConfigAddress::decode(0x80ab3f7f);
    CHECK(a.enabled);
    CHECK(a.bus == 0xab);
    CHECK(a.device == 7);
    CHECK(a.function == 7);
    CHECK(a.reg == 0x7c);
    CHECK_FALSE(PciConfigAddress::decode(0x00000000).enabled);
    CHECK(PciConfigAddress::decode(config_address(31, 0x10)).device == 31);
}

TEST_CASE("CONFIG_ADDRESS reads back as a dword, as Linux's type-1 probe checks") {
    Host h;
    h.set_address(0x80000000);
    CHECK(h.read(0, 4) == 0x80000000);
    h.write(3, 0x01, 1);  // byte writes do not touch the latch
    CHECK(h.read(0, 4) == 0x80000000);
}

TEST_CASE("slot 0 is a host bridge; empty slots and other buses read all ones") {
    Host h;
    h.set_address(config_address(0, PCI_VENDOR_ID));
    CHECK(h.read(4, 2) == 0x1b36);
    CHECK(h.read(6, 2) == 0x0008);
    h.set_address(config_address(0, 0x08));
    CHECK(h.read(4, 4) >> 8 == 0x060000);  // class code: bridge, host
    h.set_address(config_address(5, 0));
    CHECK(h.read(4, 4) == 0xffffffff);
    h.set_address(config_address(0, 0, /*bus=*/1));
    CHECK(h.read(4, 4) == 0xffffffff);
    h.set_address(config_address(0, 0) & ~0x80000000u);
    CHECK(h.read(4, 4) == 0xffffffff);
}

TEST_CASE("data-port accesses reach the slot's function at register + byte offset") {
    Host h;
    auto fn = std::make_shared<Recorder>();
    auto slot = h.bridge.add(fn);
    REQUIRE(slot == 1);
    h.set_address(config_address(1, 0x10));
    CHECK(h.read(4, 4) == 0x42424242);
    CHECK(h.read(6, 2) == 0x4242);
    CHECK(h.read(7, 1) == 0x42);
    h.write(5, 0xbeef, 2);  // misaligned word: dropped
    h.write(6, 0xbeef, 2);
    REQUIRE(fn->reads.size() == 3);
    CHECK(fn->reads[0] == std::pair<uint16_t, std::size_t>{0x10, 4});
    CHECK(fn->reads[1] == std::pair<uint16_t, std::size_t>{0x12, 2});
    CHECK(fn->reads[2] == std::pair<uint16_t, std::size_t>{0x13, 1});
    REQUIRE(fn->writes.size() == 1);
    CHECK(fn->writes[0] == std::pair<uint16_t, std::size_t>{0x12, 2});
    CHECK(fn->last_value == 0xbeef);
    // Function 1 of the slot does not exist.
    h.set_address(config_address(1, 0, 0, 1));
    CHECK(h.read(4, 4) == 0xffffffff);
}

TEST_CASE("the bus fills up at 32 slots") {
    PciHostBridge bridge(no_gsi);
    for (unsigned i = 1; i < PciHostBridge::kSlots; ++i)
        CHECK(bridge.add(std::make_shared<Recorder>()) == i);
    CHECK_FALSE(bridge.add(std::make_shared<Recorder>()));
}

TEST_CASE("INTx: each slot drives its GSI; slots sharing one are wired-OR") {
    std::vector<std::pair<uint32_t, bool>> changes;
    PciHostBridge bridge([&](uint32_t gsi, bool asserted) { changes.emplace_back(gsi, asserted); });
    using Change = std::pair<uint32_t, bool>;

    bridge.set_intx(1, true);
    bridge.set_intx(1, true);  // no change, no call
    REQUIRE(changes == std::vector<Change>{{16, true}});
    bridge.set_intx(2, true);
    CHECK(changes.back() == Change{17, true});
    changes.clear();

    // Slot 9 shares slot 1's GSI: the line stays up until both let go.
    CHECK(layout::pci_intx_gsi(9) == 16);
    bridge.set_intx(9, true);
    bridge.set_intx(1, false);
    CHECK(changes.empty());
    bridge.set_intx(9, false);
    CHECK(changes == std::vector<Change>{{16, false}});
    bridge.set_intx(9, false);
    bridge.set_intx(2, false);
    CHECK(changes == std::vector<Change>{{16, false}, {17, false}});

    changes.clear();
    bridge.set_intx(PciHostBridge::kSlots, true);  // no such slot
    CHECK(changes.empty());
}

TEST_CASE("INTx GSIs are I/O APIC pins 16-23, above the ISA IRQs") {
    for (unsigned slot = 1; slot < PciHostBridge::kSlots; ++slot) {
        INFO("slot " << slot);
        CHECK(layout::pci_intx_gsi(slot) >= 16);
        CHECK(layout::pci_intx_gsi(slot) <= 23);
    }
    CHECK(layout::pci_intx_gsi(1) == 16);
    CHECK(layout::pci_intx_gsi(8) == 23);
}
