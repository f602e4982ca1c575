// SPDX-License-Identifier: Apache-2.0
// Private: the two ring engines' constructors, for activate_queue().
#pragma once

#include "vfsdax/virtio/queue.hpp"

namespace vfsdax::virtio {

// Both take a config activate_queue() already checked for the rules common to both layouts
// (ready, 0 < size <= max_size); each checks its own layout's size and alignment rules.
std::expected<std::unique_ptr<Queue>, QueueError> make_split_queue(const QueueConfig& config,
                                                                   const GuestMemory& memory,
                                                                   uint64_t features);
std::expected<std::unique_ptr<Queue>, QueueError> make_packed_queue(const QueueConfig& config,
                                                                    const GuestMemory& memory,
                                                                    uint64_t features);

}  // namespace vfsdax::virtio
