// SPDX-License-Identifier: Apache-2.0
// MP table: signatures, checksums, one enabled processor per vCPU, the I/O APIC, ISA and PCI IRQs.
#include "mptable.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <numeric>

#include "layout.hpp"

using namespace vfsdax::vmm;

namespace {

uint8_t sum(const std::vector<std::byte>& v, std::size_t from, std::size_t n) {
    unsigned s = 0;
    for (std::size_t i = from; i < from + n; ++i) s += unsigned(v[i]);
    return static_cast<uint8_t>(s);
}
uint8_t u8(const std::vector<std::byte>& v, std::size_t at) {
    return uint8_t(v[at]);
}
uint16_t u16(const std::vector<std::byte>& v, std::size_t at) {
    return u8(v, at) | u8(v, at + 1) << 8;
}
uint32_t u32(const std::vector<std::byte>& v, std::size_t at) {
    return u16(v, at) | u16(v, at + 2) << 16;
}

}  // namespace

TEST_CASE("MP table for 4 vCPUs") {
    constexpr uint32_t base = 0xf0000;
    const auto t = build_mptable(base, 4);
    REQUIRE(t.size() == kMpFloatingSize + kMpHeaderSize + 4 * kMpProcessorSize +
                            (2 + 1 + kMpIsaIrqs + 31 + 2) * kMpSmallEntrySize);

    CHECK(std::memcmp(t.data(), "_MP_", 4) == 0);
    CHECK(u32(t, 4) == base + kMpFloatingSize);  // physical address of the table
    CHECK(u8(t, 8) == 1);
    CHECK(u8(t, 9) == 4);
    CHECK(sum(t, 0, kMpFloatingSize) == 0);

    const std::size_t h = kMpFloatingSize;
    CHECK(std::memcmp(t.data() + h, "PCMP", 4) == 0);
    CHECK(u16(t, h + 4) == t.size() - h);
    CHECK(sum(t, h, t.size() - h) == 0);
    CHECK(u16(t, h + 34) == 4 + 2 + 1 + kMpIsaIrqs + 31 + 2);
    CHECK(u32(t, h + 36) == 0xfee00000);

    std::size_t e = h + kMpHeaderSize;
    for (unsigned cpu = 0; cpu < 4; ++cpu, e += kMpProcessorSize) {
        INFO("cpu " << cpu);
        CHECK(u8(t, e) == 0);                       // processor entry
        CHECK(u8(t, e + 1) == cpu);                 // APIC id
        CHECK(u8(t, e + 3) == (cpu == 0 ? 3 : 1));  // enabled, bootstrap for vCPU 0 only
    }
    // Bus ids: Linux looks a PCI device's interrupt up by its bus number, 0.
    CHECK(u8(t, e) == 1);
    CHECK(u8(t, e + 1) == 0);
    CHECK(std::memcmp(t.data() + e + 2, "PCI   ", 6) == 0);
    e += kMpSmallEntrySize;
    CHECK(u8(t, e) == 1);
    CHECK(u8(t, e + 1) == 1);
    CHECK(std::memcmp(t.data() + e + 2, "ISA   ", 6) == 0);
    e += kMpSmallEntrySize;
    CHECK(u8(t, e) == 2);      // I/O APIC
    CHECK(u8(t, e + 1) == 4);  // id after the CPUs
    CHECK(u8(t, e + 3) == 1);  // enabled
    CHECK(u32(t, e + 4) == 0xfec00000);
    e += kMpSmallEntrySize;
    for (unsigned irq = 0; irq < kMpIsaIrqs; ++irq, e += kMpSmallEntrySize) {
        INFO("irq " << irq);
        CHECK(u8(t, e) == 3);
        CHECK(u8(t, e + 1) == 0);    // INT
        CHECK(u16(t, e + 2) == 0);   // ISA's own polarity and trigger
        CHECK(u8(t, e + 4) == 1);    // the ISA bus
        CHECK(u8(t, e + 5) == irq);  // source bus IRQ
        CHECK(u8(t, e + 6) == 4);    // the I/O APIC
        CHECK(u8(t, e + 7) == irq);  // its pin
    }
    // PCI: what Linux's IO_APIC_get_PCI_irq_vector matches, bus 0, (slot << 2) | (INTA# - 1).
    const uint8_t pci_pins[] = {16, 17, 18, 19, 20, 21, 22, 23};
    for (unsigned slot = 1; slot <= 31; ++slot, e += kMpSmallEntrySize) {
        INFO("slot " << slot);
        CHECK(u8(t, e) == 3);
        CHECK(u8(t, e + 1) == 0);
        CHECK(u16(t, e + 2) == 0x0f);  // level triggered (3 << 2), active low (3)
        CHECK(u8(t, e + 4) == 0);
        CHECK(u8(t, e + 5) == slot << 2);
        CHECK(u8(t, e + 6) == 4);
        CHECK(u8(t, e + 7) == pci_pins[(slot - 1) % 8]);
        CHECK(u8(t, e + 7) == layout::pci_intx_gsi(slot));
    }
    CHECK(u8(t, e) == 4);
    CHECK(u8(t, e + 1) == 3);  // ExtINT
    CHECK(u8(t, e + 4) == 1);  // from the ISA bus
    CHECK(u8(t, e + 7) == 0);  // LINT0
    e += kMpSmallEntrySize;
    CHECK(u8(t, e + 1) == 1);  // NMI
    CHECK(u8(t, e + 7) == 1);  // LINT1
}

TEST_CASE("MP table checksums hold for every vCPU count") {
    for (unsigned cpus = 1; cpus <= 64; ++cpus) {
        const auto t = build_mptable(0xf0000, cpus);
        CHECK(sum(t, 0, kMpFloatingSize) == 0);
        CHECK(sum(t, kMpFloatingSize, t.size() - kMpFloatingSize) == 0);
    }
}
