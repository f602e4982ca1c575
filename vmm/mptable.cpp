// SPDX-License-Identifier: Apache-2.0
// MP table serialisation with both checksums.
#include "mptable.hpp"

#include <cstring>
#include <numeric>

#include "layout.hpp"

namespace vfsdax::vmm {
namespace {

class Writer {
public:
    explicit Writer(std::vector<std::byte>& out) : out_(out) {}
    void u8(uint8_t v) { out_.push_back(std::byte{v}); }
    void u16(uint16_t v) {
        u8(v & 0xff);
        u8(v >> 8);
    }
    void u32(uint32_t v) {
        u16(v & 0xffff);
        u16(v >> 16);
    }
    void text(const char* s, std::size_t width) {
        const std::size_t n = std::strlen(s);
        for (std::size_t i = 0; i < width; ++i) u8(i < n ? static_cast<uint8_t>(s[i]) : ' ');
    }
    void zeros(std::size_t n) { out_.insert(out_.end(), n, std::byte{0}); }

private:
    std::vector<std::byte>& out_;
};

uint8_t checksum(const std::byte* data, std::size_t size) {
    const unsigned sum = std::accumulate(data, data + size, 0u,
                                         [](unsigned a, std::byte b) { return a + unsigned(b); });
    return static_cast<uint8_t>(-sum);
}

constexpr uint8_t kProcessor = 0, kBus = 1, kIoApic = 2, kIoInterrupt = 3, kLocalInterrupt = 4;
constexpr uint8_t kIntInt = 0, kIntNmi = 1, kIntExtInt = 3;
constexpr uint8_t kSpecRev = 4;  // 1.4
constexpr uint8_t kApicVersion = 0x14;
constexpr uint8_t kIoApicVersion = 0x11;
constexpr uint8_t kCpuEnabled = 1, kCpuBootstrap = 2;
constexpr uint32_t kCpuSignature = 0x600;         // family 6: any signature will do for Linux
constexpr uint32_t kCpuFeatures = (1u << 9) | 1;  // APIC on chip, FPU
// I/O interrupt flags (MP spec 1.4, 4.3.4): polarity in bits 0-1, trigger mode in bits 2-3.
constexpr uint16_t kFlagsBusDefault = 0;
constexpr uint16_t kFlagsLevelActiveLow = 0x3 | 0x3 << 2;
constexpr uint8_t kPciIntA = 0;  // source bus IRQ of a PCI interrupt: slot << 2 | (pin - 1)

}  // namespace

std::vector<std::byte> build_mptable(uint32_t base, unsigned cpus) {
    std::vector<std::byte> out;
    Writer w(out);
    const uint8_t ioapic_id = static_cast<uint8_t>(cpus);

    // Floating pointer; its checksum is filled in at the end.
    w.text("_MP_", 4);
    w.u32(base + kMpFloatingSize);
    w.u8(1);  // length in 16-byte units
    w.u8(kSpecRev);
    w.u8(0);     // checksum
    w.zeros(5);  // feature bytes: a configuration table is present, no IMCR

    const std::size_t header = out.size();
    w.text("PCMP", 4);
    w.u16(0);  // base table length, filled in below
    w.u8(kSpecRev);
    w.u8(0);  // checksum
    w.text("VFSDAX", 8);
    w.text("VFSDAX-VMM", 12);
    w.u32(0);  // OEM table
    w.u16(0);
    const uint16_t entries = static_cast<uint16_t>(cpus + 2 + 1 + kMpIsaIrqs + kMpPciSlots + 2);
    w.u16(entries);
    w.u32(static_cast<uint32_t>(layout::kLapic));
    w.u16(0);  // no extended table
    w.u8(0);
    w.u8(0);

    for (unsigned cpu = 0; cpu < cpus; ++cpu) {
        w.u8(kProcessor);
        w.u8(static_cast<uint8_t>(cpu));
        w.u8(kApicVersion);
        w.u8(kCpuEnabled | (cpu == 0 ? kCpuBootstrap : 0));
        w.u32(kCpuSignature);
        w.u32(kCpuFeatures);
        w.zeros(8);
    }
    w.u8(kBus);
    w.u8(kMpPciBus);
    w.text("PCI", 6);
    w.u8(kBus);
    w.u8(kMpIsaBus);
    w.text("ISA", 6);

    w.u8(kIoApic);
    w.u8(ioapic_id);
    w.u8(kIoApicVersion);
    w.u8(1);  // enabled
    w.u32(static_cast<uint32_t>(layout::kIoapic));

    auto io_interrupt = [&](uint16_t flags, uint8_t bus, uint8_t bus_irq, uint32_t pin) {
        w.u8(kIoInterrupt);
        w.u8(kIntInt);
        w.u16(flags);
        w.u8(bus);
        w.u8(bus_irq);
        w.u8(ioapic_id);
        w.u8(static_cast<uint8_t>(pin));
    };
    // ISA's default is active high, edge.
    for (unsigned irq = 0; irq < kMpIsaIrqs; ++irq)
        io_interrupt(kFlagsBusDefault, kMpIsaBus, static_cast<uint8_t>(irq), irq);
    for (unsigned slot = 1; slot <= kMpPciSlots; ++slot)
        io_interrupt(kFlagsLevelActiveLow, kMpPciBus, static_cast<uint8_t>(slot << 2 | kPciIntA),
                     layout::pci_intx_gsi(slot));
    for (uint8_t lint = 0; lint < 2; ++lint) {
        w.u8(kLocalInterrupt);
        w.u8(lint == 0 ? kIntExtInt : kIntNmi);
        w.u16(kFlagsBusDefault);
        w.u8(kMpIsaBus);
        w.u8(0);
        w.u8(0xff);  // every local APIC
        w.u8(lint);
    }

    const std::size_t table_size = out.size() - header;
    out[header + 4] = std::byte(table_size & 0xff);
    out[header + 5] = std::byte(table_size >> 8);
    out[header + 7] = std::byte{checksum(out.data() + header, table_size)};
    out[10] = std::byte{checksum(out.data(), kMpFloatingSize)};
    return out;
}

}  // namespace vfsdax::vmm
