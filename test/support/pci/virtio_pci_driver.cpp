// SPDX-License-Identifier: Apache-2.0
// VirtioPciDriver: enumeration, capability walk and register-level driver operations.
#include "pci/virtio_pci_driver.hpp"

#include <linux/pci_regs.h>

#include <cstddef>
#include <stdexcept>

#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::test {

namespace {

constexpr uint64_t kPageSize = 4096;
// Linux's pci_find_next_capability gives up after this many hops (a looping list).
constexpr int kCapabilityTtl = 48;
// sizeof(struct virtio_pci_modern_common_cfg) in Linux 6.1: through queue_reset.
constexpr uint32_t kModernCommonCfgSize = VIRTIO_PCI_COMMON_Q_RESET + 2;

}  // namespace

VirtioPciDriver::VirtioPciDriver(PciBusPort& bus, uint64_t mmio_base)
    : bus_(bus), mmio_next_(mmio_base) {}

void VirtioPciDriver::enumerate() {
    const uint32_t command = bus_.config_read(PCI_COMMAND, 2);
    bus_.config_write(PCI_COMMAND, 2, command & ~uint32_t{PCI_COMMAND_MEMORY});
    for (uint8_t i = 0; i < 6; ++i) {
        const uint16_t reg = PCI_BASE_ADDRESS_0 + 4 * i;
        const uint32_t original = bus_.config_read(reg, 4);
        if (original & PCI_BASE_ADDRESS_SPACE_IO) continue;
        const bool is_64 =
            (original & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
        bus_.config_write(reg, 4, 0xffffffff);
        uint64_t mask = bus_.config_read(reg, 4) & PCI_BASE_ADDRESS_MEM_MASK;
        bus_.config_write(reg, 4, original);
        if (is_64 && i < 5) {
            const uint32_t original_high = bus_.config_read(reg + 4, 4);
            bus_.config_write(reg + 4, 4, 0xffffffff);
            mask |= uint64_t{bus_.config_read(reg + 4, 4)} << 32;
            bus_.config_write(reg + 4, 4, original_high);
        } else if (mask != 0) {
            mask |= 0xffffffff00000000ull;
        }
        if (mask != 0) {
            PciBar& bar = bars_[i];
            bar.size = ~mask + 1;
            bar.is_64bit = is_64;
            bar.prefetchable = (original & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
            bar.address = (mmio_next_ + bar.size - 1) & ~(bar.size - 1);
            mmio_next_ = bar.address + bar.size;
            bus_.config_write(reg, 4, static_cast<uint32_t>(bar.address));
            if (is_64) bus_.config_write(reg + 4, 4, static_cast<uint32_t>(bar.address >> 32));
        }
        if (is_64) ++i;  // the upper half is not a BAR of its own
    }
    bus_.config_write(PCI_COMMAND, 2, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

void VirtioPciDriver::move_bar(uint8_t index, uint64_t address) {
    PciBar& bar = bars_.at(index);
    if (bar.size == 0 || address % bar.size != 0) throw std::invalid_argument("bad BAR move");
    const uint32_t command = bus_.config_read(PCI_COMMAND, 2);
    bus_.config_write(PCI_COMMAND, 2, command & ~uint32_t{PCI_COMMAND_MEMORY});
    const uint16_t reg = PCI_BASE_ADDRESS_0 + 4 * index;
    bus_.config_write(reg, 4, static_cast<uint32_t>(address));
    if (bar.is_64bit) bus_.config_write(reg + 4, 4, static_cast<uint32_t>(address >> 32));
    bar.address = address;
    bus_.config_write(PCI_COMMAND, 2, command);
}

uint8_t VirtioPciDriver::next_capability(uint8_t pos, uint8_t id) {
    int ttl = kCapabilityTtl;
    while (ttl-- > 0) {
        if (pos < PCI_STD_HEADER_SIZEOF) return 0;
        pos &= ~3;
        const uint16_t entry = static_cast<uint16_t>(bus_.config_read(pos, 2));
        const uint8_t entry_id = entry & 0xff;
        if (entry_id == 0xff) return 0;
        if (entry_id == id) return pos;
        pos = static_cast<uint8_t>(entry >> 8);
    }
    return 0;
}

uint8_t VirtioPciDriver::find_capability(uint8_t id) {
    if (!(bus_.config_read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return 0;
    return next_capability(static_cast<uint8_t>(bus_.config_read(PCI_CAPABILITY_LIST, 1)), id);
}

uint8_t VirtioPciDriver::find_virtio_capability(uint8_t cfg_type) {
    for (uint8_t pos = find_capability(PCI_CAP_ID_VNDR); pos != 0;
         pos = next_capability(static_cast<uint8_t>(bus_.config_read(pos + PCI_CAP_LIST_NEXT, 1)),
                               PCI_CAP_ID_VNDR)) {
        const uint8_t type =
            static_cast<uint8_t>(bus_.config_read(pos + VIRTIO_PCI_CAP_CFG_TYPE, 1));
        const uint8_t bar = static_cast<uint8_t>(bus_.config_read(pos + VIRTIO_PCI_CAP_BAR, 1));
        if (bar > 5) continue;  // reserved BAR values
        if (type == cfg_type && bars_[bar].size != 0) return pos;
    }
    return 0;
}

std::expected<MappedStructure, std::string> VirtioPciDriver::map_capability(
    uint8_t cap, uint32_t minlen, uint32_t align, uint32_t start, uint32_t size) {
    const uint8_t bar = static_cast<uint8_t>(bus_.config_read(cap + VIRTIO_PCI_CAP_BAR, 1));
    uint32_t offset = bus_.config_read(cap + VIRTIO_PCI_CAP_OFFSET, 4);
    uint32_t length = bus_.config_read(cap + VIRTIO_PCI_CAP_LENGTH, 4);
    if (length <= start) return std::unexpected("bad capability len (<= start)");
    if (length - start < minlen) return std::unexpected("bad capability len (< minlen)");
    length -= start;
    if (start + offset < offset) return std::unexpected("map wrap-around");
    offset += start;
    if (offset & (align - 1)) return std::unexpected("offset not aligned");
    if (length > size) length = size;
    if (uint64_t{minlen} + offset > bars_[bar].size) return std::unexpected("out of range on bar");
    return MappedStructure{bar, offset, length};
}

std::expected<void, std::string> VirtioPciDriver::probe() {
    const uint16_t vendor = static_cast<uint16_t>(bus_.config_read(PCI_VENDOR_ID, 2));
    const uint16_t device = static_cast<uint16_t>(bus_.config_read(PCI_DEVICE_ID, 2));
    if (vendor != 0x1af4) return std::unexpected("not a virtio vendor id");
    if (device < 0x1040 || device > 0x107f) return std::unexpected("not a modern virtio device id");
    virtio_id_ = device - 0x1040;

    const uint8_t common = find_virtio_capability(VIRTIO_PCI_CAP_COMMON_CFG);
    if (common == 0) return std::unexpected("no common capability: legacy device");
    const uint8_t isr = find_virtio_capability(VIRTIO_PCI_CAP_ISR_CFG);
    const uint8_t notify = find_virtio_capability(VIRTIO_PCI_CAP_NOTIFY_CFG);
    if (isr == 0 || notify == 0) return std::unexpected("missing isr or notify capability");
    const uint8_t device_cap = find_virtio_capability(VIRTIO_PCI_CAP_DEVICE_CFG);

    auto mapped = map_capability(common, sizeof(virtio_pci_common_cfg), 4, 0, kModernCommonCfgSize);
    if (!mapped) return std::unexpected("common: " + mapped.error());
    common_ = *mapped;
    mapped = map_capability(isr, 1, 1, 0, 1);
    if (!mapped) return std::unexpected("isr: " + mapped.error());
    isr_ = *mapped;

    notify_multiplier_ = bus_.config_read(notify + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
    const uint32_t notify_length = bus_.config_read(notify + VIRTIO_PCI_CAP_LENGTH, 4);
    const uint32_t notify_offset = bus_.config_read(notify + VIRTIO_PCI_CAP_OFFSET, 4);
    // Linux maps the doorbells at once when they fit a page, else one per queue at setup.
    notify_cap_ = notify;
    notify_mapped_ = uint64_t{notify_length} + notify_offset % kPageSize <= kPageSize;
    if (notify_mapped_) {
        mapped = map_capability(notify, 2, 2, 0, notify_length);
        if (!mapped) return std::unexpected("notify: " + mapped.error());
        notify_ = *mapped;
    }
    if (device_cap != 0) {
        mapped = map_capability(device_cap, 0, 4, 0, kPageSize);
        if (!mapped) return std::unexpected("device: " + mapped.error());
        device_ = *mapped;
    }

    msix_cap_ = find_capability(PCI_CAP_ID_MSIX);
    if (msix_cap_ != 0) {
        const uint32_t table = bus_.config_read(msix_cap_ + PCI_MSIX_TABLE, 4);
        const uint32_t pba = bus_.config_read(msix_cap_ + PCI_MSIX_PBA, 4);
        const PciBar& table_bar = bars_.at(table & PCI_MSIX_TABLE_BIR);
        const PciBar& pba_bar = bars_.at(pba & PCI_MSIX_PBA_BIR);
        const uint64_t table_end =
            (table & PCI_MSIX_TABLE_OFFSET) + uint64_t{msix_table_size()} * PCI_MSIX_ENTRY_SIZE;
        const uint64_t pba_end = (pba & PCI_MSIX_PBA_OFFSET) + (msix_table_size() + 63) / 64 * 8;
        if (table_end > table_bar.size || pba_end > pba_bar.size) {
            return std::unexpected("MSI-X table or PBA beyond its BAR");
        }
        msix_table_ = MappedStructure{static_cast<uint8_t>(table & PCI_MSIX_TABLE_BIR),
                                      table & PCI_MSIX_TABLE_OFFSET,
                                      table_end - (table & PCI_MSIX_TABLE_OFFSET)};
        msix_pba_ =
            MappedStructure{static_cast<uint8_t>(pba & PCI_MSIX_PBA_BIR), pba & PCI_MSIX_PBA_OFFSET,
                            pba_end - (pba & PCI_MSIX_PBA_OFFSET)};
    }
    return {};
}

std::optional<ShmRegion> VirtioPciDriver::shm_region(uint8_t id) {
    for (uint8_t pos = find_capability(PCI_CAP_ID_VNDR); pos != 0;
         pos = next_capability(static_cast<uint8_t>(bus_.config_read(pos + PCI_CAP_LIST_NEXT, 1)),
                               PCI_CAP_ID_VNDR)) {
        if (bus_.config_read(pos + VIRTIO_PCI_CAP_CFG_TYPE, 1) != VIRTIO_PCI_CAP_SHARED_MEMORY_CFG)
            continue;
        if (bus_.config_read(pos + VIRTIO_PCI_CAP_LEN, 1) != sizeof(virtio_pci_cap64)) continue;
        if (bus_.config_read(pos + offsetof(virtio_pci_cap, id), 1) != id) continue;
        const uint8_t bar = static_cast<uint8_t>(bus_.config_read(pos + VIRTIO_PCI_CAP_BAR, 1));
        if (bar >= 6) continue;
        const uint64_t offset =
            bus_.config_read(pos + VIRTIO_PCI_CAP_OFFSET, 4) |
            uint64_t{bus_.config_read(pos + offsetof(virtio_pci_cap64, offset_hi), 4)} << 32;
        const uint64_t length =
            bus_.config_read(pos + VIRTIO_PCI_CAP_LENGTH, 4) |
            uint64_t{bus_.config_read(pos + offsetof(virtio_pci_cap64, length_hi), 4)} << 32;
        if (offset + length < offset) return std::nullopt;           // overflow
        if (offset + length > bars_[bar].size) return std::nullopt;  // BAR shorter than the region
        return ShmRegion{bars_[bar].address + offset, length};
    }
    return std::nullopt;
}

uint64_t VirtioPciDriver::common_read(uint32_t offset, unsigned width) {
    return bus_.mmio_read(address(common_) + offset, width);
}

void VirtioPciDriver::common_write(uint32_t offset, unsigned width, uint64_t value) {
    bus_.mmio_write(address(common_) + offset, width, value);
}

void VirtioPciDriver::reset() {
    common_write(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    for (int tries = 0; tries < 1000; ++tries) {
        if (status() == 0) {
            features_ = 0;
            return;
        }
    }
    throw std::runtime_error("device_status never read 0 after reset");
}

uint8_t VirtioPciDriver::status() {
    return static_cast<uint8_t>(common_read(VIRTIO_PCI_COMMON_STATUS, 1));
}

void VirtioPciDriver::add_status(uint8_t bits) {
    common_write(VIRTIO_PCI_COMMON_STATUS, 1, status() | bits);
}

uint64_t VirtioPciDriver::device_features() {
    common_write(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    uint64_t features = common_read(VIRTIO_PCI_COMMON_DF, 4);
    common_write(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    return features | common_read(VIRTIO_PCI_COMMON_DF, 4) << 32;
}

bool VirtioPciDriver::negotiate(uint64_t wanted, uint64_t forced) {
    add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    add_status(VIRTIO_CONFIG_S_DRIVER);
    features_ = (device_features() & wanted) | forced;
    common_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    common_write(VIRTIO_PCI_COMMON_GF, 4, static_cast<uint32_t>(features_));
    common_write(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_write(VIRTIO_PCI_COMMON_GF, 4, features_ >> 32);
    add_status(VIRTIO_CONFIG_S_FEATURES_OK);
    return (status() & VIRTIO_CONFIG_S_FEATURES_OK) != 0;
}

uint8_t VirtioPciDriver::config_generation() {
    return static_cast<uint8_t>(common_read(VIRTIO_PCI_COMMON_CFGGENERATION, 1));
}

uint16_t VirtioPciDriver::msix_table_size() {
    return static_cast<uint16_t>(
        (bus_.config_read(msix_cap_ + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1);
}

uint64_t VirtioPciDriver::msix_entry(uint16_t vector) const {
    return address(msix_table_) + uint64_t{vector} * PCI_MSIX_ENTRY_SIZE;
}

void VirtioPciDriver::enable_msix(uint16_t vectors) {
    if (msix_cap_ == 0) throw std::runtime_error("no MSI-X capability");
    const uint16_t control = static_cast<uint16_t>(bus_.config_read(msix_cap_ + PCI_MSIX_FLAGS, 2));
    bus_.config_write(msix_cap_ + PCI_MSIX_FLAGS, 2,
                      control | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    for (uint16_t v = 0; v < vectors; ++v) {
        bus_.mmio_write(msix_entry(v) + PCI_MSIX_ENTRY_LOWER_ADDR, 4, kMsiAddress & 0xffffffff);
        bus_.mmio_write(msix_entry(v) + PCI_MSIX_ENTRY_UPPER_ADDR, 4, kMsiAddress >> 32);
        bus_.mmio_write(msix_entry(v) + PCI_MSIX_ENTRY_DATA, 4, kMsiDataBase + v);
    }
    bus_.config_write(msix_cap_ + PCI_MSIX_FLAGS, 2,
                      (control | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
    for (uint16_t v = 0; v < vectors; ++v) mask_vector(v, false);
}

void VirtioPciDriver::disable_msix() {
    const uint16_t control = static_cast<uint16_t>(bus_.config_read(msix_cap_ + PCI_MSIX_FLAGS, 2));
    bus_.config_write(msix_cap_ + PCI_MSIX_FLAGS, 2,
                      control & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
}

void VirtioPciDriver::mask_vector(uint16_t vector, bool masked) {
    bus_.mmio_write(msix_entry(vector) + PCI_MSIX_ENTRY_VECTOR_CTRL, 4,
                    masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
}

void VirtioPciDriver::mask_function(bool masked) {
    uint16_t control = static_cast<uint16_t>(bus_.config_read(msix_cap_ + PCI_MSIX_FLAGS, 2));
    control = masked ? (control | PCI_MSIX_FLAGS_MASKALL) : (control & ~PCI_MSIX_FLAGS_MASKALL);
    bus_.config_write(msix_cap_ + PCI_MSIX_FLAGS, 2, control);
}

bool VirtioPciDriver::vector_pending(uint16_t vector) {
    const uint64_t word = bus_.mmio_read(address(msix_pba_) + vector / 64 * 8, 8);
    return (word >> (vector % 64)) & 1;
}

uint16_t VirtioPciDriver::set_config_vector(uint16_t vector) {
    common_write(VIRTIO_PCI_COMMON_MSIX, 2, vector);
    return static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_MSIX, 2));
}

uint16_t VirtioPciDriver::set_queue_vector(uint16_t queue, uint16_t vector) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, queue);
    common_write(VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
    return static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_MSIX, 2));
}

uint16_t VirtioPciDriver::num_queues() {
    return static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_NUMQ, 2));
}

uint16_t VirtioPciDriver::queue_max_size(uint16_t index) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    return static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2));
}

std::optional<uint16_t> VirtioPciDriver::setup_queue(uint16_t index, uint16_t size,
                                                     const QueueRings& rings) {
    if (index >= num_queues()) return std::nullopt;
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    const uint16_t max = static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2));
    if (max == 0 || common_read(VIRTIO_PCI_COMMON_Q_ENABLE, 2) != 0) return std::nullopt;
    const bool packed = (features_ >> VIRTIO_F_RING_PACKED) & 1;
    if (!packed && (max & (max - 1)) != 0) return std::nullopt;  // Linux: "bad queue size"
    const uint16_t chosen = size < max ? size : max;
    common_write(VIRTIO_PCI_COMMON_Q_SIZE, 2, chosen);
    common_write(VIRTIO_PCI_COMMON_Q_DESCLO, 4, rings.desc.raw() & 0xffffffff);
    common_write(VIRTIO_PCI_COMMON_Q_DESCHI, 4, rings.desc.raw() >> 32);
    common_write(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, rings.driver.raw() & 0xffffffff);
    common_write(VIRTIO_PCI_COMMON_Q_AVAILHI, 4, rings.driver.raw() >> 32);
    common_write(VIRTIO_PCI_COMMON_Q_USEDLO, 4, rings.device.raw() & 0xffffffff);
    common_write(VIRTIO_PCI_COMMON_Q_USEDHI, 4, rings.device.raw() >> 32);
    const uint16_t off = static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_NOFF, 2));
    if (notify_mapped_) {
        if (uint64_t{off} * notify_multiplier_ + 2 > notify_.length) return std::nullopt;
    } else if (!map_capability(notify_cap_, 2, 2, off * notify_multiplier_, 2)) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_SIZE, 2));
}

void VirtioPciDriver::enable_queue(uint16_t index) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    common_write(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

bool VirtioPciDriver::queue_enabled(uint16_t index) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    return common_read(VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 1;
}

void VirtioPciDriver::reset_queue(uint16_t index) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    common_write(VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    for (int tries = 0; tries < 1000; ++tries) {
        if (common_read(VIRTIO_PCI_COMMON_Q_RESET, 2) == 0) return;
    }
    throw std::runtime_error("queue_reset never read 0");
}

uint64_t VirtioPciDriver::doorbell(uint16_t off) {
    if (notify_mapped_) return address(notify_) + uint64_t{off} * notify_multiplier_;
    auto mapped = map_capability(notify_cap_, 2, 2, off * notify_multiplier_, 2);
    if (!mapped) throw std::runtime_error("notify: " + mapped.error());
    return address(*mapped);
}

void VirtioPciDriver::kick(uint16_t index) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    const auto off = static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_NOFF, 2));
    bus_.mmio_write(doorbell(off), 2, index);
}

void VirtioPciDriver::kick_with_data(uint16_t index, uint32_t data) {
    common_write(VIRTIO_PCI_COMMON_Q_SELECT, 2, index);
    const auto off = static_cast<uint16_t>(common_read(VIRTIO_PCI_COMMON_Q_NOFF, 2));
    bus_.mmio_write(doorbell(off), 4, data);
}

uint8_t VirtioPciDriver::read_isr() {
    return static_cast<uint8_t>(bus_.mmio_read(address(isr_), 1));
}

uint32_t VirtioPciDriver::read_device_config(uint32_t offset, unsigned width) {
    if (!device_ || offset + width > device_->length) throw std::out_of_range("device config");
    return static_cast<uint32_t>(bus_.mmio_read(address(*device_) + offset, width));
}

void VirtioPciDriver::write_device_config(uint32_t offset, unsigned width, uint32_t value) {
    if (!device_ || offset + width > device_->length) throw std::out_of_range("device config");
    bus_.mmio_write(address(*device_) + offset, width, value);
}

}  // namespace vfsdax::test
