// SPDX-License-Identifier: Apache-2.0
// QueueError: every way a guest can break a virtqueue, as a value.
#pragma once

#include <cstdint>

#include "vfsdax/export.hpp"

namespace vfsdax::virtio {

// One byte: std::expected<bool, QueueError>, what pop() returns, then fits in two bytes of one
// register, and the caller tests it with one compare.
enum class QueueError : uint8_t {
    BadConfig,              // activation: size, alignment or ring addresses unusable
    AddressOutOfRange,      // a ring or buffer address not backed by guest memory
    BadAvailIndex,          // split: the driver claims more new buffers than the queue holds
    BadDescriptorIndex,     // a descriptor index or NEXT link beyond the table
    ChainTooLong,           // more descriptors than the queue (or indirect table) holds: a loop
    ZeroLength,             // a buffer descriptor of length 0
    LengthOverflow,         // descriptor address + length wraps, or a chain exceeds 2^32 - 1 bytes
    ReadableAfterWritable,  // device-readable descriptor after a device-writable one
    BadIndirectTable,       // length 0 or not a multiple of 16, or INDIRECT with NEXT (packed)
    NestedIndirect,         // an INDIRECT descriptor inside an indirect table
    BadBufferId,            // buffer id out of range or in flight; push of an unknown chain
    Broken,                 // the queue failed earlier and stays failed until reset
};

VFSDAX_EXPORT const char* to_string(QueueError error);

}  // namespace vfsdax::virtio
