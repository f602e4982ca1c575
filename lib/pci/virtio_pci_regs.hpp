// SPDX-License-Identifier: Apache-2.0
// Virtio-pci values the Linux 6.1 uapi headers lack, defined once here (virtio 1.2, 4.1).
#pragma once

#include <cstdint>

#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::pci {

// 4.1.2: vendor 0x1af4; modern device ids are 0x1040 + the virtio device id.
constexpr uint16_t kVirtioVendorId = 0x1af4;
constexpr uint16_t kVirtioDeviceIdBase = 0x1040;
constexpr uint8_t kVirtioRevision = 1;

// 4.1.4.5: ISR bit 0, "queue interrupt" (uapi names only the config bit).
constexpr uint8_t kIsrQueue = 0x1;

// 4.1.4.3: struct virtio_pci_common_cfg of 6.1 stops at queue_used_hi; the offsets of
// queue_notify_data and queue_reset are in the uapi (VIRTIO_PCI_COMMON_Q_NDATA/_Q_RESET),
// the structure's full length is not.
constexpr uint32_t kCommonCfgLength = VIRTIO_PCI_COMMON_Q_RESET + sizeof(uint16_t);

}  // namespace vfsdax::pci
