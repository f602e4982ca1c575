// SPDX-License-Identifier: Apache-2.0
// Virtio constants: the kernel's uapi headers, plus the few newer than Debian 12's (Linux 6.1).
#pragma once

// The legacy vring_init() helpers are C that does not compile as C++; we never use them.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include <cstdint>

namespace vfsdax::virtio {

// Feature bits are bit numbers, as in the uapi headers; this turns one into a mask.
constexpr uint64_t feature_bit(unsigned bit) { return uint64_t{1} << bit; }

// Virtio 1.2, 6: VIRTIO_F_NOTIFICATION_DATA (not in Linux 6.1 uapi).
constexpr unsigned kFeatureNotificationData = 38;
// Virtio 1.2, 5.11.3: virtio-fs notification queue feature (never upstreamed to Linux uapi).
constexpr unsigned kFsFeatureNotification = 0;

// The ring features every queue engine here implements, on both layouts.
constexpr uint64_t kRingFeatures = feature_bit(VIRTIO_RING_F_INDIRECT_DESC) |
                                   feature_bit(VIRTIO_RING_F_EVENT_IDX) |
                                   feature_bit(VIRTIO_F_RING_PACKED);

// Largest queue size either layout allows (split: 32768, a power of two; packed: 32768 too).
constexpr uint16_t kMaxQueueSize = 32768;

}  // namespace vfsdax::virtio
