// SPDX-License-Identifier: Apache-2.0
// QueueConfig: what the driver programs for one virtqueue, as the transport records it.
#pragma once

#include <cstdint>

#include "vfsdax/memory/guest_address.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::virtio {

// Owned by the transport; a device only ever sees the queue activated from it.
struct QueueConfig {
    uint16_t max_size = 0;  // the device's limit, reported to the driver
    uint16_t size = 0;      // the driver's choice
    bool ready = false;
    GuestAddress desc;    // descriptor table (split) or descriptor ring (packed)
    GuestAddress driver;  // avail ring (split) or driver event suppression (packed)
    GuestAddress device;  // used ring (split) or device event suppression (packed)
    uint16_t msix_vector = VIRTIO_MSI_NO_VECTOR;
};

}  // namespace vfsdax::virtio
