// SPDX-License-Identifier: Apache-2.0
// Queue activation (split or packed by the negotiated features) and error names.
#include "vfsdax/virtio/queue.hpp"

#include "virtio/queue_factories.hpp"

namespace vfsdax::virtio {

const char* to_string(QueueError error) {
    switch (error) {
        case QueueError::BadConfig:
            return "unusable queue configuration";
        case QueueError::AddressOutOfRange:
            return "ring or buffer address outside guest memory";
        case QueueError::BadAvailIndex:
            return "avail index moved by more than the queue size";
        case QueueError::BadDescriptorIndex:
            return "descriptor index beyond the table";
        case QueueError::ChainTooLong:
            return "descriptor chain longer than the queue (loop)";
        case QueueError::ZeroLength:
            return "zero-length descriptor";
        case QueueError::LengthOverflow:
            return "descriptor length overflows";
        case QueueError::ReadableAfterWritable:
            return "device-readable descriptor after a writable one";
        case QueueError::BadIndirectTable:
            return "malformed indirect descriptor table";
        case QueueError::NestedIndirect:
            return "nested indirect descriptor";
        case QueueError::BadBufferId:
            return "bad buffer id";
        case QueueError::Broken:
            return "queue is broken until reset";
    }
    return "unknown queue error";
}

std::expected<std::unique_ptr<Queue>, QueueError> activate_queue(const QueueConfig& config,
                                                                 const GuestMemory& memory,
                                                                 uint64_t features) {
    if (!config.ready || config.size == 0 || config.size > config.max_size) {
        return std::unexpected(QueueError::BadConfig);
    }
    if (features & feature_bit(VIRTIO_F_RING_PACKED)) {
        return make_packed_queue(config, memory, features);
    }
    return make_split_queue(config, memory, features);
}

}  // namespace vfsdax::virtio
