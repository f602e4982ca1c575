// SPDX-License-Identifier: Apache-2.0
// DriverBuffer: one guest buffer element as the driver models offer it, for both ring layouts.
#pragma once

#include <cstdint>

#include "vfsdax/memory/guest_address.hpp"

namespace vfsdax::test {

// An element of a chain (split, 2.7.13.1) or of a buffer (packed, 2.8): where it is in guest
// memory and how long.
struct DriverBuffer {
    GuestAddress addr;
    uint32_t len = 0;
};

}  // namespace vfsdax::test
