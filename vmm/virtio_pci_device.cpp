// SPDX-License-Identifier: Apache-2.0
// Wiring of a virtio-pci transport into the machine: config space, BARs, doorbells, MSI, windows.
#include "virtio_pci_device.hpp"

#include <fmt/format.h>
#include <linux/pci_regs.h>
#include <sys/eventfd.h>

#include <cstring>

#include "layout.hpp"
#include "log.hpp"

namespace vfsdax::vmm {

// MSI-X messages go straight to KVM; INTx (a driver without MSI-X) goes through the host
// bridge, which owns the slot's I/O APIC input.
class VirtioPciDevice::Sink : public pci::InterruptSink {
public:
    Sink(Vm& vm, PciHostBridge& bridge) : vm_(vm), bridge_(bridge) {}
    void send_msi(uint64_t address, uint32_t data) override {
        if (auto r = vm_.signal_msi(address, data); !r) log(LogLevel::Warn, "{}", r.error());
    }
    void set_intx(bool asserted) override { bridge_.set_intx(slot, asserted); }

    // Set once the slot is known, before any vCPU runs.
    uint8_t slot = 0;

private:
    Vm& vm_;
    PciHostBridge& bridge_;
};

// One queue doorbell: an eventfd KVM signals on the guest's notify write.
struct VirtioPciDevice::Doorbell {
    pci::NotifyAddress notify;
    UniqueFd event;
    std::optional<uint64_t> registered;  // guest address of the live ioeventfd
};

// One shared memory region: its backing, KVM slot, GuestMemory region and placement.
struct VirtioPciDevice::Window {
    pci::SharedMemoryPlacement placement;
    SharedMemoryBacking backing;
    uint32_t kvm_slot = 0;
    GuestMemory::RegionId region = 0;
    bool placed = false;
};

namespace {

class ConfigFunction : public PciFunction {
public:
    explicit ConfigFunction(pci::VirtioPciTransport& t) : t_(t) {}
    void read_config(uint16_t offset, std::span<std::byte> data) override {
        t_.config_read(offset, data);
    }
    void write_config(uint16_t offset, std::span<const std::byte> data) override {
        t_.config_write(offset, data);
    }

private:
    pci::VirtioPciTransport& t_;
};

class BarRange : public BusDevice {
public:
    BarRange(pci::VirtioPciTransport& t, uint8_t bar) : t_(t), bar_(bar) {}
    void read(uint64_t offset, std::span<std::byte> data) override {
        t_.bar_read(bar_, offset, data);
    }
    void write(uint64_t offset, std::span<const std::byte> data) override {
        t_.bar_write(bar_, offset, data);
    }

private:
    pci::VirtioPciTransport& t_;
    uint8_t bar_;
};

// Linux's virtio_pci_modern rings a doorbell with a 16-bit write of the queue index.
constexpr uint32_t kDoorbellWidth = 2;

}  // namespace

VirtioPciDevice::VirtioPciDevice(Machine& machine) : machine_(machine) {}

std::expected<std::unique_ptr<VirtioPciDevice>, std::string> VirtioPciDevice::attach(
    Machine& machine, virtio::Device& device, std::vector<SharedMemoryBacking> backings) {
    std::unique_ptr<VirtioPciDevice> d(new VirtioPciDevice(machine));
    d->sink_ = std::make_unique<Sink>(machine.vm(), machine.pci());
    auto transport = pci::VirtioPciTransport::create(device, machine.memory(), *d->sink_);
    if (!transport) return std::unexpected("virtio-pci: " + transport.error());
    d->transport_ = std::make_unique<pci::VirtioPciTransport>(std::move(*transport));

    for (const pci::SharedMemoryPlacement& p : d->transport_->shared_memory()) {
        auto backing = std::find_if(backings.begin(), backings.end(),
                                    [&](const SharedMemoryBacking& b) { return b.id == p.id; });
        if (backing == backings.end() || backing->size != p.size)
            return std::unexpected(
                fmt::format("shared memory region {}: no backing of {} bytes", p.id, p.size));
        auto region = machine.memory().add_unplaced_region(p.size, backing->host);
        if (!region)
            return std::unexpected(fmt::format("shared memory region {}: GuestMemory: {}", p.id,
                                               to_string(region.error())));
        d->windows_.push_back(Window{p, *backing, machine.allocate_memory_slot(), *region, false});
    }
    for (const pci::NotifyAddress& n : d->transport_->notify_addresses()) {
        auto bell = std::make_unique<Doorbell>();
        bell->notify = n;
        bell->event = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!bell->event) return std::unexpected(errno_text("eventfd"));
        pci::VirtioPciTransport* t = d->transport_.get();
        const int fd = bell->event.get();
        auto added = machine.loop().add(fd, [t, fd, queue = n.queue] {
            uint64_t count;
            if (::read(fd, &count, sizeof(count)) == sizeof(count)) t->notify(queue, 0);
        });
        if (!added) return std::unexpected(added.error());
        d->doorbells_.push_back(std::move(bell));
    }

    VirtioPciDevice* self = d.get();
    d->transport_->set_bar_listener([self](const pci::BarInfo& bar) { self->bar_changed(bar); });
    auto slot = machine.pci().add(std::make_shared<ConfigFunction>(*d->transport_));
    if (!slot) return std::unexpected("PCI bus 0 is full");
    d->slot_ = d->sink_->slot = *slot;
    // The guest's driver may ignore NEEDS_RESET (Linux's do) and wait for ever: say why here.
    d->transport_->set_needs_reset_listener([slot = *slot](std::string_view reason) {
        log(LogLevel::Warn, "PCI 00:{:02x}.0: device needs a reset: {}", slot, reason);
    });
    // Firmware's job: the interrupt line register tells the driver the slot's GSI.
    const auto line = static_cast<uint8_t>(layout::pci_intx_gsi(*slot));
    d->transport_->config_write(PCI_INTERRUPT_LINE, std::as_bytes(std::span(&line, 1)));
    if (auto r = d->place_bars(); !r) return std::unexpected(r.error());
    return d;
}

VirtioPciDevice::~VirtioPciDevice() {
    for (const auto& bell : doorbells_) machine_.loop().remove(bell->event.get());
}

std::expected<void, std::string> VirtioPciDevice::place_bars() {
    for (const pci::BarInfo& bar : transport_->bars()) {
        auto address = machine_.allocate_mmio(bar.size, bar.is_64bit);
        if (!address) return std::unexpected(fmt::format("BAR {}: {}", bar.index, address.error()));
        const uint32_t reg = PCI_BASE_ADDRESS_0 + 4u * bar.index;
        const uint32_t low = static_cast<uint32_t>(*address), high = *address >> 32;
        transport_->config_write(reg, std::as_bytes(std::span(&low, 1)));
        if (bar.is_64bit) transport_->config_write(reg + 4, std::as_bytes(std::span(&high, 1)));
    }
    uint16_t command = 0;
    transport_->config_read(PCI_COMMAND, std::as_writable_bytes(std::span(&command, 1)));
    command |= PCI_COMMAND_MEMORY;
    transport_->config_write(PCI_COMMAND, std::as_bytes(std::span(&command, 1)));
    return {};
}

void VirtioPciDevice::bar_changed(const pci::BarInfo& bar) {
    std::lock_guard lock(mutex_);
    bool is_window_bar = false;
    for (Window& w : windows_) {
        if (w.placement.bar != bar.index) continue;
        is_window_bar = true;
        if (w.placed) {
            machine_.memory().unplace_region(w.region);
            if (auto r = machine_.vm().delete_memory_region(w.kvm_slot); !r)
                log(LogLevel::Warn, "DAX window {}: {}", w.placement.id, r.error());
            w.placed = false;
        }
        if (!bar.address) continue;
        const uint64_t gpa = *bar.address + w.placement.offset;
        if (auto r =
                machine_.vm().set_memory_region(w.kvm_slot, gpa, w.backing.size, w.backing.host);
            !r) {
            log(LogLevel::Warn, "DAX window {} at {:#x}: {}", w.placement.id, gpa, r.error());
            continue;
        }
        if (auto r = machine_.memory().place_region(w.region, GuestAddress(gpa)); !r)
            log(LogLevel::Warn, "DAX window {} at {:#x}: {}", w.placement.id, gpa,
                to_string(r.error()));
        w.placed = true;
    }
    if (is_window_bar) return;

    if (auto old = mmio_bars_.find(bar.index); old != mmio_bars_.end()) {
        machine_.mmio().remove(old->second);
        mmio_bars_.erase(old);
        for (auto& bell : doorbells_) {
            if (bell->notify.bar != bar.index || !bell->registered) continue;
            machine_.vm().remove_ioeventfd(*bell->registered, kDoorbellWidth, false,
                                           bell->event.get());
            bell->registered.reset();
        }
    }
    if (!bar.address) return;
    if (!machine_.mmio().insert(*bar.address, bar.size,
                                std::make_shared<BarRange>(*transport_, bar.index))) {
        log(LogLevel::Warn, "BAR {} at {:#x} overlaps another device; left unmapped", bar.index,
            *bar.address);
        return;
    }
    mmio_bars_[bar.index] = *bar.address;
    for (auto& bell : doorbells_) {
        if (bell->notify.bar != bar.index) continue;
        const uint64_t gpa = *bar.address + bell->notify.offset;
        // Without the ioeventfd the doorbell still works, through an MMIO exit.
        if (auto r = machine_.vm().add_ioeventfd(gpa, kDoorbellWidth, false, bell->event.get()); r)
            bell->registered = gpa;
        else
            log(LogLevel::Warn, "queue {} doorbell: {}", bell->notify.queue, r.error());
    }
}

}  // namespace vfsdax::vmm
