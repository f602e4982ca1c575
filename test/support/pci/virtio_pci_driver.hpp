// SPDX-License-Identifier: Apache-2.0
// VirtioPciDriver: a guest-side virtio-pci (modern) driver model, after Linux's virtio_pci.
//
// Written from the virtio 1.2 spec (4.1) and the behaviour of Linux 6.1's PCI core and
// drivers/virtio/virtio_pci_modern*.c: it sizes and places BARs as firmware does, walks the
// capability list, validates every structure's bar, offset and length against the BAR sizes
// the way vp_modern_map_capability does, finds shared memory regions as
// virtio_pci_find_shm_cap does, and drives status, features, queues and MSI-X through the
// registers only. It never looks at the device code.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>

#include "pci/pci_bus_port.hpp"
#include "vfsdax/memory/guest_address.hpp"

namespace vfsdax::test {

struct PciBar {
    uint64_t address = 0;
    uint64_t size = 0;  // 0: BAR not implemented
    bool is_64bit = false;
    bool prefetchable = false;
};

// A mapped virtio structure: a range of a BAR, wherever the BAR sits now.
struct MappedStructure {
    uint8_t bar = 0;
    uint64_t offset = 0;
    uint64_t length = 0;
};

struct ShmRegion {
    uint64_t address = 0;
    uint64_t length = 0;
};

class VirtioPciDriver {
public:
    // MSI-X messages the driver programs: this address, and data = kMsiDataBase + vector.
    static constexpr uint64_t kMsiAddress = 0xfee00000;
    static constexpr uint32_t kMsiDataBase = 0x40;

    // BARs are placed from `mmio_base` upwards, each aligned to its size.
    explicit VirtioPciDriver(PciBusPort& bus, uint64_t mmio_base = 0xc000'0000);

    // Firmware's part: size every BAR (all-ones write, read back, restore) with decoding off,
    // place them, then enable memory decoding and bus mastering.
    void enumerate();
    // Moves one BAR (decoding off around the move, as the kernel does).
    void move_bar(uint8_t index, uint64_t address);
    const PciBar& bar(uint8_t index) const { return bars_.at(index); }

    // vp_modern_probe: device id range, required capabilities, mapping checks. The error
    // names the check that failed.
    std::expected<void, std::string> probe();
    uint16_t virtio_device_id() const { return virtio_id_; }
    const MappedStructure& common() const { return common_; }
    const std::optional<MappedStructure>& device_config() const { return device_; }
    uint32_t notify_multiplier() const { return notify_multiplier_; }

    // vp_get_shm_region.
    std::optional<ShmRegion> shm_region(uint8_t id);

    // Status and features (3.1.1).
    void reset();  // writes 0, then polls until device_status reads 0 (bounded; throws)
    uint8_t status();
    void add_status(uint8_t bits);
    uint64_t device_features();
    // ACKNOWLEDGE, DRIVER, features (offered & wanted | forced), FEATURES_OK, and the read-back
    // check. `forced` bits are written even when not offered (a broken driver). Returns whether
    // the device kept FEATURES_OK.
    bool negotiate(uint64_t wanted, uint64_t forced = 0);
    uint64_t features() const { return features_; }
    uint8_t config_generation();

    // MSI-X (PCI 3.0 6.8): enable with the function masked, program `vectors` entries, then
    // unmask the function and each vector, as the Linux MSI-X core does.
    void enable_msix(uint16_t vectors);
    void disable_msix();
    void mask_vector(uint16_t vector, bool masked);
    void mask_function(bool masked);
    bool vector_pending(uint16_t vector);
    uint16_t msix_table_size();
    // vp_config_vector / the tail of setup_vq: write, then read back to see it was accepted.
    uint16_t set_config_vector(uint16_t vector);
    uint16_t set_queue_vector(uint16_t queue, uint16_t vector);

    // setup_vq: num_queues check, size read (0 or enabled: unavailable), optional smaller size,
    // ring addresses, notify address. Returns the queue size, or none as Linux would refuse.
    struct QueueRings {
        GuestAddress desc, driver, device;
    };
    std::optional<uint16_t> setup_queue(uint16_t index, uint16_t size, const QueueRings& rings);
    uint16_t num_queues();
    uint16_t queue_max_size(uint16_t index);  // queue_size as the device reports it
    void enable_queue(uint16_t index);
    bool queue_enabled(uint16_t index);
    void reset_queue(uint16_t index);  // VIRTIO_F_RING_RESET; polls queue_reset to 0
    void driver_ok() { add_status(4); }

    // vp_notify: 16-bit queue index, or with NOTIFICATION_DATA the 32-bit value.
    void kick(uint16_t index);
    void kick_with_data(uint16_t index, uint32_t data);
    uint8_t read_isr();

    uint32_t read_device_config(uint32_t offset, unsigned width);
    void write_device_config(uint32_t offset, unsigned width, uint32_t value);

    // Raw register access (for hostile tests).
    uint64_t common_read(uint32_t offset, unsigned width);
    void common_write(uint32_t offset, unsigned width, uint64_t value);
    PciBusPort& bus() { return bus_; }
    // Offset of the first capability of `id` (pci_find_capability), or 0.
    uint8_t find_capability(uint8_t id);
    // Offset of the first virtio vendor capability of `cfg_type` with a usable BAR, or 0.
    uint8_t find_virtio_capability(uint8_t cfg_type);

private:
    std::expected<MappedStructure, std::string> map_capability(uint8_t cap, uint32_t minlen,
                                                               uint32_t align, uint32_t start,
                                                               uint32_t size);
    uint8_t next_capability(uint8_t pos, uint8_t id);
    uint64_t address(const MappedStructure& s) const { return bars_[s.bar].address + s.offset; }
    uint64_t msix_entry(uint16_t vector) const;
    // The doorbell for notify offset `off`: mapped at probe, or per queue (Linux does the
    // latter when the notify structure does not fit one page).
    uint64_t doorbell(uint16_t off);

    PciBusPort& bus_;
    uint64_t mmio_next_;
    std::array<PciBar, 6> bars_{};
    uint16_t virtio_id_ = 0;
    MappedStructure common_;
    MappedStructure isr_;
    MappedStructure notify_;
    std::optional<MappedStructure> device_;
    uint8_t notify_cap_ = 0;
    bool notify_mapped_ = false;
    uint32_t notify_multiplier_ = 0;
    uint64_t features_ = 0;
    MappedStructure msix_table_;
    MappedStructure msix_pba_;
    uint8_t msix_cap_ = 0;
};

}  // namespace vfsdax::test
