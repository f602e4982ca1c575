// SPDX-License-Identifier: Apache-2.0
// VirtioPciTransport: PCI function state, access dispatch and the owner-facing API.
#include "vfsdax/pci/virtio_pci_transport.hpp"

#include <fmt/format.h>
#include <linux/pci_regs.h>

#include <array>
#include <cstring>
#include <mutex>
#include <optional>

#include "pci/bar_layout.hpp"
#include "pci/capabilities.hpp"
#include "pci/common_config.hpp"
#include "pci/config_space.hpp"
#include "pci/interrupt_router.hpp"
#include "pci/transport_interrupt.hpp"
#include "pci/virtio_pci_regs.hpp"

namespace vfsdax::pci {

namespace {

constexpr std::size_t kMaxQueues = 2047;  // plus the config vector: the 2048 MSI-X maximum
constexpr uint32_t kMaxConfigSize = 4096;

// PCI class code (base, sub) by virtio device type; the driver matches on ids, not class.
uint32_t class_code(uint32_t device_type) {
    switch (device_type) {
        case VIRTIO_ID_NET:
            return 0x020000;  // network, Ethernet
        case VIRTIO_ID_BLOCK:
        case VIRTIO_ID_FS:
            return 0x018000;  // mass storage, other
        case VIRTIO_ID_CONSOLE:
            return 0x078000;  // communication, other
        default:
            return 0xff0000;  // no class defined
    }
}

bool natural(uint64_t offset, std::size_t width, std::initializer_list<std::size_t> widths) {
    for (std::size_t w : widths) {
        if (width == w) return offset % width == 0;
    }
    return false;
}

uint64_t load_le(std::span<const std::byte> data) {
    uint64_t value = 0;
    std::memcpy(&value, data.data(), data.size());
    return value;
}

void store_le(std::span<std::byte> data, uint64_t value) {
    std::memcpy(data.data(), &value, data.size());
}

bool overlaps(uint32_t offset, std::size_t width, uint32_t field, std::size_t field_width) {
    return offset < field + field_width && field < offset + width;
}

std::string validate(const virtio::Device& device) {
    if (!(device.device_features() & virtio::feature_bit(VIRTIO_F_VERSION_1))) {
        return "device does not offer VIRTIO_F_VERSION_1";
    }
    const auto sizes = device.queue_max_sizes();
    if (sizes.empty() || sizes.size() > kMaxQueues) return "device has no queues or too many";
    for (uint16_t size : sizes) {
        if (size == 0 || size > virtio::kMaxQueueSize) return "queue maximum size out of range";
    }
    if (device.config_size() > kMaxConfigSize) return "device configuration larger than 4 KiB";
    return {};
}

}  // namespace

struct VFSDAX_LOCAL VirtioPciTransport::Impl {
    Impl(virtio::Device& device_in, const GuestMemory& memory, InterruptSink& sink,
         RegistersLayout registers_in, SharedMemoryLayout shared_in, uint16_t vectors)
        : device(device_in),
          registers(registers_in),
          shared(std::move(shared_in)),
          router(sink, static_cast<uint16_t>(device_in.queue_max_sizes().size()), vectors),
          interrupt(router),
          common(device_in, memory, router, interrupt) {}

    virtio::Device& device;
    const RegistersLayout registers;
    const SharedMemoryLayout shared;
    ConfigSpace config;
    CapabilityOffsets caps;
    InterruptRouter router;
    TransportInterrupt interrupt;

    mutable std::mutex mutex;  // everything below, and `config`
    CommonConfig common;
    std::function<void(const BarInfo&)> bar_listener;
    std::array<std::optional<BarInfo>, PCI_STD_NUM_BARS> reported_bars;

    std::vector<uint8_t> bar_indices() const {
        std::vector<uint8_t> indices{kRegistersBar};
        if (shared.bar_size != 0) indices.push_back(kSharedMemoryBar);
        return indices;
    }

    uint32_t pci_cfg_data() const {
        return caps.pci_cfg + static_cast<uint32_t>(offsetof(virtio_pci_cfg_cap, pci_cfg_data));
    }

    // The access the PCI_CFG window describes, when it is one a driver may make.
    std::optional<std::pair<uint64_t, std::size_t>> window_access(uint8_t& bar) const {
        bar = static_cast<uint8_t>(config.read(caps.pci_cfg + VIRTIO_PCI_CAP_BAR, 1));
        const uint32_t offset = config.read(caps.pci_cfg + VIRTIO_PCI_CAP_OFFSET, 4);
        const uint32_t length = config.read(caps.pci_cfg + VIRTIO_PCI_CAP_LENGTH, 4);
        if (!natural(offset, length, {1, 2, 4})) return std::nullopt;
        return std::pair<uint64_t, std::size_t>{offset, length};
    }

    uint64_t read_registers(uint64_t offset, std::size_t width) {
        if (registers.common.contains(offset, width)) {
            return common.read(static_cast<uint32_t>(offset - registers.common.offset), width);
        }
        if (registers.isr.contains(offset, width) && width == 1) return router.read_isr();
        if (registers.device.contains(offset, width) && natural(offset, width, {1, 2, 4})) {
            std::array<std::byte, 4> bytes{};
            device.read_config(static_cast<uint32_t>(offset - registers.device.offset),
                               std::span(bytes).first(width));
            return load_le(std::span(bytes).first(width));
        }
        if (registers.msix_table.contains(offset, width) && natural(offset, width, {4, 8})) {
            const uint64_t at = offset - registers.msix_table.offset;
            uint64_t value = router.read_table(at);
            if (width == 8) value |= uint64_t{router.read_table(at + 4)} << 32;
            return value;
        }
        if (registers.msix_pba.contains(offset, width) && natural(offset, width, {4, 8})) {
            const uint64_t at = offset - registers.msix_pba.offset;
            uint64_t value = router.read_pba(at);
            if (width == 8) value |= uint64_t{router.read_pba(at + 4)} << 32;
            return value;
        }
        return 0;
    }

    void write_registers(uint64_t offset, std::size_t width, uint64_t value) {
        if (registers.common.contains(offset, width)) {
            common.write(static_cast<uint32_t>(offset - registers.common.offset), width,
                         static_cast<uint32_t>(value));
        } else if (registers.device.contains(offset, width) && natural(offset, width, {1, 2, 4})) {
            std::array<std::byte, 4> bytes{};
            store_le(std::span(bytes).first(width), value);
            device.write_config(static_cast<uint32_t>(offset - registers.device.offset),
                                std::span(bytes).first(width));
        } else if (registers.notify.contains(offset, width) && natural(offset, width, {2, 4})) {
            const uint64_t at = offset - registers.notify.offset;
            if (at % kNotifyOffMultiplier == 0) {
                common.notify(static_cast<uint16_t>(at / kNotifyOffMultiplier),
                              static_cast<uint32_t>(value));
            }
        } else if (registers.msix_table.contains(offset, width) && natural(offset, width, {4, 8})) {
            const uint64_t at = offset - registers.msix_table.offset;
            router.write_table(at, static_cast<uint32_t>(value));
            if (width == 8) router.write_table(at + 4, static_cast<uint32_t>(value >> 32));
        }
    }

    uint64_t read_bar(uint8_t bar, uint64_t offset, std::size_t width) {
        // The shared memory BAR is the owner's host memory; nothing here to read.
        return bar == kRegistersBar ? read_registers(offset, width) : 0;
    }

    void write_bar(uint8_t bar, uint64_t offset, std::size_t width, uint64_t value) {
        if (bar == kRegistersBar) write_registers(offset, width, value);
    }

    uint32_t read_config(uint32_t offset, std::size_t width) {
        if (overlaps(offset, width, pci_cfg_data(), 4)) {
            uint8_t bar = 0;
            if (auto access = window_access(bar)) {
                config.set(pci_cfg_data(), access->second,
                           static_cast<uint32_t>(read_bar(bar, access->first, access->second)));
            }
        }
        uint32_t value = config.read(offset, width);
        // PCI_STATUS_INTERRUPT lives in the status register's low byte.
        if (overlaps(offset, width, PCI_STATUS, 1) && router.intx_pending()) {
            value |= uint32_t{PCI_STATUS_INTERRUPT} << (8 * (PCI_STATUS - offset));
        }
        return value;
    }

    // Returns the BARs whose placement changed, for the listener.
    std::vector<BarInfo> write_config(uint32_t offset, std::size_t width, uint32_t value) {
        config.guest_write(offset, width, value);
        if (overlaps(offset, width, PCI_COMMAND, 2)) {
            router.set_intx_disabled(config.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE);
        }
        if (overlaps(offset, width, caps.msix + PCI_MSIX_FLAGS, 2)) {
            const uint32_t control = config.read(caps.msix + PCI_MSIX_FLAGS, 2);
            router.set_msix_control(control & PCI_MSIX_FLAGS_ENABLE,
                                    control & PCI_MSIX_FLAGS_MASKALL);
        }
        if (overlaps(offset, width, pci_cfg_data(), 4)) {
            uint8_t bar = 0;
            if (auto access = window_access(bar)) {
                write_bar(bar, access->first, access->second,
                          config.read(pci_cfg_data(), access->second));
            }
        }
        std::vector<BarInfo> changed;
        for (uint8_t index : bar_indices()) {
            auto now = config.bar(index);
            if (now != reported_bars[index]) {
                reported_bars[index] = now;
                changed.push_back(*now);
            }
        }
        return changed;
    }
};

std::expected<VirtioPciTransport, std::string> VirtioPciTransport::create(virtio::Device& device,
                                                                          const GuestMemory& memory,
                                                                          InterruptSink& sink,
                                                                          PciIdentity identity) {
    if (std::string problem = validate(device); !problem.empty()) return std::unexpected(problem);
    auto shared = SharedMemoryLayout::compute(device.shared_memory_regions());
    if (!shared) return std::unexpected(shared.error());

    const auto num_queues = static_cast<uint16_t>(device.queue_max_sizes().size());
    const auto vectors = static_cast<uint16_t>(num_queues + 1);
    const MsixTable sizing(vectors);
    const auto registers = RegistersLayout::compute(num_queues, device.config_size(),
                                                    sizing.table_bytes(), sizing.pba_bytes());
    auto impl =
        std::make_unique<Impl>(device, memory, sink, registers, std::move(*shared), vectors);

    ConfigSpace& config = impl->config;
    config.set(PCI_VENDOR_ID, 2, kVirtioVendorId);
    config.set(PCI_DEVICE_ID, 2, kVirtioDeviceIdBase + device.device_type());
    config.set(PCI_REVISION_ID, 1, kVirtioRevision);
    config.set(PCI_CLASS_PROG, 3, class_code(device.device_type()));
    config.set(PCI_SUBSYSTEM_VENDOR_ID, 2, identity.subsystem_vendor);
    config.set(PCI_SUBSYSTEM_ID, 2, identity.subsystem_id);
    config.set(PCI_INTERRUPT_LINE, 1, identity.interrupt_line);
    config.set(PCI_INTERRUPT_PIN, 1, 1);  // INTA#
    config.define_bar64(kRegistersBar, registers.bar_size, false);
    if (impl->shared.bar_size != 0) {
        config.define_bar64(kSharedMemoryBar, impl->shared.bar_size, true);
    }
    auto caps = install_capabilities(config, registers, impl->shared, vectors);
    if (!caps) return std::unexpected(caps.error());
    impl->caps = *caps;
    for (uint8_t index : impl->bar_indices()) impl->reported_bars[index] = config.bar(index);

    TransportInterrupt& interrupt = impl->interrupt;
    device.set_config_change_listener([&interrupt] { interrupt.config_changed(); });
    return VirtioPciTransport(std::move(impl));
}

VirtioPciTransport::VirtioPciTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VirtioPciTransport::VirtioPciTransport(VirtioPciTransport&&) noexcept = default;
VirtioPciTransport& VirtioPciTransport::operator=(VirtioPciTransport&&) noexcept = default;

VirtioPciTransport::~VirtioPciTransport() {
    if (!impl_) return;
    impl_->device.set_config_change_listener({});
    std::lock_guard lock(impl_->mutex);
    impl_->common.reset();
}

void VirtioPciTransport::config_read(uint32_t offset, std::span<std::byte> data) {
    uint32_t value = 0;
    if (natural(offset, data.size(), {1, 2, 4}) && offset + data.size() <= ConfigSpace::kSize) {
        std::lock_guard lock(impl_->mutex);
        value = impl_->read_config(offset, data.size());
    }
    if (data.size() <= sizeof(uint64_t)) {
        store_le(data, value);
    } else {
        std::memset(data.data(), 0, data.size());
    }
}

void VirtioPciTransport::config_write(uint32_t offset, std::span<const std::byte> data) {
    if (!natural(offset, data.size(), {1, 2, 4}) || offset + data.size() > ConfigSpace::kSize) {
        return;
    }
    std::vector<BarInfo> changed;
    std::function<void(const BarInfo&)> listener;
    {
        std::lock_guard lock(impl_->mutex);
        changed = impl_->write_config(offset, data.size(), static_cast<uint32_t>(load_le(data)));
        if (!changed.empty()) listener = impl_->bar_listener;
    }
    if (listener) {
        for (const BarInfo& bar : changed) listener(bar);
    }
}

void VirtioPciTransport::bar_read(uint8_t bar, uint64_t offset, std::span<std::byte> data) {
    uint64_t value = 0;
    if (natural(offset, data.size(), {1, 2, 4, 8})) {
        std::lock_guard lock(impl_->mutex);
        value = impl_->read_bar(bar, offset, data.size());
    }
    if (data.size() <= sizeof(uint64_t)) {
        store_le(data, value);
    } else {
        std::memset(data.data(), 0, data.size());
    }
}

void VirtioPciTransport::bar_write(uint8_t bar, uint64_t offset, std::span<const std::byte> data) {
    if (!natural(offset, data.size(), {1, 2, 4, 8})) return;
    std::lock_guard lock(impl_->mutex);
    impl_->write_bar(bar, offset, data.size(), load_le(data));
}

std::vector<BarInfo> VirtioPciTransport::bars() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<BarInfo> result;
    for (uint8_t index : impl_->bar_indices()) result.push_back(*impl_->config.bar(index));
    return result;
}

void VirtioPciTransport::set_bar_listener(std::function<void(const BarInfo&)> listener) {
    std::lock_guard lock(impl_->mutex);
    impl_->bar_listener = std::move(listener);
}

std::vector<NotifyAddress> VirtioPciTransport::notify_addresses() const {
    std::vector<NotifyAddress> result;
    const BarRange& doorbells = impl_->registers.notify;
    for (uint64_t at = 0; at < doorbells.length; at += kNotifyOffMultiplier) {
        result.push_back({kRegistersBar, doorbells.offset + at,
                          static_cast<uint16_t>(at / kNotifyOffMultiplier)});
    }
    return result;
}

void VirtioPciTransport::notify(uint16_t queue, uint32_t data) {
    std::lock_guard lock(impl_->mutex);
    impl_->common.notify(queue, data);
}

std::vector<SharedMemoryPlacement> VirtioPciTransport::shared_memory() const {
    return impl_->shared.regions;
}

void VirtioPciTransport::reset() {
    std::lock_guard lock(impl_->mutex);
    impl_->common.reset();
}

void VirtioPciTransport::set_needs_reset_listener(std::function<void(std::string_view)> listener) {
    impl_->interrupt.set_needs_reset_listener(std::move(listener));
}

std::vector<std::string> VirtioPciTransport::describe() const {
    uint32_t status;
    {
        std::lock_guard lock(impl_->mutex);
        status = impl_->common.read(VIRTIO_PCI_COMMON_STATUS, 1);
    }
    std::vector<std::string> lines{
        fmt::format("device status {:#04x}, {}", status, impl_->router.describe())};
    // Outside the register lock: the device takes its own locks, under which its workers
    // may raise interrupts.
    for (std::string& line : impl_->device.describe()) lines.push_back(std::move(line));
    return lines;
}

}  // namespace vfsdax::pci
