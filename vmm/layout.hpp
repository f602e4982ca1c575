// SPDX-License-Identifier: Apache-2.0
// Guest-physical layout of a vfsdax-vmm machine: where boot data, RAM and the PCI holes go.
#pragma once

#include <cstdint>

namespace vfsdax::vmm::layout {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;

// Boot data in low RAM, below the EBDA, as Linux's 64-bit boot protocol expects.
inline constexpr uint64_t kGdt = 0x500;
inline constexpr uint64_t kBootParams = 0x7000;
inline constexpr uint64_t kPml4 = 0x9000;
inline constexpr uint64_t kPdpt = 0xa000;
inline constexpr uint64_t kPageDirs = 0xb000;  // 4 pages: 2 MiB pages for the first 4 GiB
inline constexpr uint64_t kIdentityMapped = 4 * GiB;
inline constexpr uint64_t kCmdline = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;

// Low RAM ends at the EBDA; the EBDA, VGA hole and BIOS area are reserved up to 1 MiB.
inline constexpr uint64_t kEbda = 0x9fc00;
inline constexpr uint64_t kHighMemory = 1 * MiB;
// The MP floating pointer and table sit in the BIOS area, where Linux scans for them.
inline constexpr uint64_t kMpTable = 0xf0000;
inline constexpr uint64_t kMpTableMax = 0x10000;

inline constexpr uint64_t kKernelLoad = 1 * MiB;

// RAM below 4 GiB stops at 3 GiB; the rest goes above 4 GiB.
inline constexpr uint64_t kLowRamEnd = 3 * GiB;
inline constexpr uint64_t kHighRamStart = 4 * GiB;
// 32-bit PCI MMIO window, between low RAM and the IOAPIC.
inline constexpr uint64_t kMmio32Start = 3 * GiB;
inline constexpr uint64_t kMmio32End = 0xfec00000;
inline constexpr uint64_t kIoapic = 0xfec00000;
inline constexpr uint64_t kLapic = 0xfee00000;
// KVM's VMX real-mode helpers need three pages below 4 GiB outside RAM and MMIO.
inline constexpr uint64_t kIdentityMapPage = 0xfeffc000;
inline constexpr uint64_t kTss = 0xfeffd000;
// 64-bit BARs (DAX windows) go above RAM, aligned to 1 GiB at least.
inline constexpr uint64_t kMmio64Align = 1 * GiB;

inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr uint16_t kCmosPort = 0x70;
inline constexpr uint16_t kI8042CommandPort = 0x64;
inline constexpr uint16_t kPciConfigAddress = 0xcf8;
inline constexpr uint16_t kPciConfigData = 0xcfc;

// PCI INTx: the INTA# line of bus 0's slot N drives I/O APIC pin 16 + (N - 1) % 8 (level,
// active low, as the MP table says). Pins 16-23 are those KVM's default routing gives the
// I/O APIC alone; 0-15 also reach the PIC and are taken by the ISA IRQs.
inline constexpr uint32_t kPciIntxFirstGsi = 16;
inline constexpr uint32_t kPciIntxGsis = 8;
constexpr uint32_t pci_intx_gsi(unsigned slot) {
    return kPciIntxFirstGsi + (slot + kPciIntxGsis - 1) % kPciIntxGsis;
}

// RAM split into its low (below the PCI hole) and high (above 4 GiB) parts.
struct RamLayout {
    uint64_t low_size;
    uint64_t high_size;

    static constexpr RamLayout of(uint64_t total) {
        return total <= kLowRamEnd ? RamLayout{total, 0}
                                   : RamLayout{kLowRamEnd, total - kLowRamEnd};
    }
    constexpr uint64_t end() const { return high_size ? kHighRamStart + high_size : low_size; }
};

}  // namespace vfsdax::vmm::layout
