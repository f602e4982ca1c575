// SPDX-License-Identifier: Apache-2.0
// embed-minimal: how a custom VMM links vfsdax and puts a virtio-fs device with DAX on its buses.
//
// A real VMM has its own RAM, buses and interrupt controller; here they are the smallest
// stand-ins that show each seam: GuestMemory (RAM + the DAX window), the PCI transport's config
// space and BARs, the InterruptSink, and the BAR listener that moves the window. It plays the
// firmware's part (placing the BARs), prints where everything landed, and exits.
#include <linux/pci_regs.h>
#include <linux/virtio_fs.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "vfsdax/fs/dax_mapper.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "vfsdax/fs/passthrough.hpp"
#include "vfsdax/pci/virtio_pci_transport.hpp"

using namespace vfsdax;

namespace {

// The VMM's interrupt controller: a KVM VMM would call KVM_SIGNAL_MSI / KVM_IRQ_LINE here.
class PrintingInterrupts : public pci::InterruptSink {
public:
    void send_msi(uint64_t address, uint32_t data) override {
        std::printf("msi %#" PRIx64 " <- %#" PRIx32 "\n", address, data);
    }
    void set_intx(bool asserted) override { std::printf("intx %d\n", asserted); }
};

void config_write32(pci::VirtioPciTransport& pci, uint32_t offset, uint32_t value) {
    pci.config_write(offset, std::as_bytes(std::span(&value, 1)));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: embed-minimal SHARED_DIR\n");
        return 2;
    }

    // 1. Guest RAM the VMM already owns, registered once.
    std::vector<std::byte> ram(64 << 20);
    GuestMemory memory;
    if (!memory.add_region(GuestAddress(0), ram.size(), ram.data())) return 1;

    // 2. The device: a host directory, a 64 MiB DAX window, the virtio-fs model.
    auto backend = fs::make_passthrough({.root = argv[1]});
    if (!backend) {
        std::fprintf(stderr, "%s: %s\n", argv[1], std::strerror(backend.error()));
        return 1;
    }
    auto mapper = fs::DaxMapper::create({.window_size = 64 << 20});
    if (!mapper) return 1;
    fs::FsDeviceOptions options;
    options.tag = "share";
    auto device = fs::FsDevice::create(options, **backend, mapper->get());
    if (!device) {
        std::fprintf(stderr, "device: %s\n", device.error().c_str());
        return 1;
    }

    // The window joins guest memory unplaced: descriptors pointing into it translate once the
    // guest has placed the BAR.
    auto window_region = memory.add_unplaced_region((*mapper)->window_size(), (*mapper)->window());
    if (!window_region) return 1;

    // 3. The transport in front of it; the VMM's buses route config and BAR accesses here.
    PrintingInterrupts interrupts;
    auto pci = pci::VirtioPciTransport::create(**device, memory, interrupts);
    if (!pci) {
        std::fprintf(stderr, "pci: %s\n", pci.error().c_str());
        return 1;
    }
    const auto windows = pci->shared_memory();
    pci->set_bar_listener([&](const pci::BarInfo& bar) {
        for (const auto& w : windows) {
            if (w.bar != bar.index || w.id != VIRTIO_FS_SHMCAP_ID_CACHE) continue;
            // A KVM VMM also moves its memory slot for [window, window + size) here.
            if (bar.address) {
                (void)memory.place_region(*window_region, GuestAddress(*bar.address + w.offset));
            } else {
                (void)memory.unplace_region(*window_region);
            }
        }
    });

    // 4. Firmware's part: place every BAR above 4 GiB and turn on memory decoding.
    uint64_t next = uint64_t{1} << 32;
    for (const auto& bar : pci->bars()) {
        next = (next + bar.size - 1) & ~(bar.size - 1);
        const uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * bar.index;
        config_write32(*pci, reg, static_cast<uint32_t>(next));
        if (bar.is_64bit) config_write32(*pci, reg + 4, static_cast<uint32_t>(next >> 32));
        next += bar.size;
    }
    config_write32(*pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    // 5. What the VMM now wires: MMIO ranges, ioeventfds, the window's memory slot.
    for (const auto& bar : pci->bars()) {
        std::printf("BAR%u: %#" PRIx64 " size %#" PRIx64 "%s\n", bar.index, bar.address.value_or(0),
                    bar.size, bar.prefetchable ? " prefetchable" : "");
    }
    for (const auto& n : pci->notify_addresses()) {
        std::printf("doorbell queue %u: BAR%u + %#" PRIx64 "\n", n.queue, n.bar, n.offset);
    }
    for (const auto& w : windows) {
        std::printf("shared memory region %u: BAR%u + %#" PRIx64 ", %" PRIu64 " MiB\n", w.id, w.bar,
                    w.offset, w.size >> 20);
    }
    for (const auto& w : windows) {
        for (const auto& bar : pci->bars()) {
            if (bar.index != w.bar || !bar.address) continue;
            const uint64_t gpa = *bar.address + w.offset;
            const bool visible = memory.translate(GuestAddress(gpa), 4096).has_value();
            std::printf("window at %#" PRIx64 " in guest memory: %s\n", gpa,
                        visible ? "yes" : "no");
            if (!visible) return 1;
        }
    }
    return 0;
}
