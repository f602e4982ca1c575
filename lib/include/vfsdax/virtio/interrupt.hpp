// SPDX-License-Identifier: Apache-2.0
// Interrupt: how a device tells its transport that the driver has something to look at.
#pragma once

#include <cstdint>
#include <string_view>

#include "vfsdax/export.hpp"

namespace vfsdax::virtio {

// Implemented by the transport (MSI-X message, or INTx plus an ISR bit). Thread-safe: a
// device may signal from any of its worker threads.
class VFSDAX_EXPORT Interrupt {
public:
    virtual ~Interrupt() = default;
    // The device placed buffers in the used ring of queue `index`.
    virtual void queue_used(uint16_t index) = 0;
    // The device configuration space changed (the transport bumps config_generation).
    virtual void config_changed() = 0;
    // The device hit an error it cannot recover from (a broken queue): the transport sets
    // DEVICE_NEEDS_RESET and raises a configuration change interrupt. `reason` (e.g. "queue 1:
    // ...") is for the VMM's log: a Linux driver does nothing on NEEDS_RESET, and its requests
    // on that queue then wait for ever, so the log is where the cause shows.
    virtual void needs_reset(std::string_view reason) = 0;
};

}  // namespace vfsdax::virtio
