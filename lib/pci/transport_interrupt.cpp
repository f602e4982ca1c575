// SPDX-License-Identifier: Apache-2.0
// TransportInterrupt: queue and configuration interrupts, config_generation, NEEDS_RESET.
#include "pci/transport_interrupt.hpp"

namespace vfsdax::pci {

void TransportInterrupt::queue_used(uint16_t index) {
    if (live()) router_.signal_queue(index);
}

void TransportInterrupt::config_changed() {
    // Bumped before the interrupt, so the driver's re-read sees the new generation.
    generation_.fetch_add(1, std::memory_order_acq_rel);
    if (live()) router_.signal_config();
}

void TransportInterrupt::needs_reset(std::string_view reason) {
    needs_reset_.store(true, std::memory_order_release);
    if (needs_reset_listener_) needs_reset_listener_(reason);
    if (live()) router_.signal_config();
}

}  // namespace vfsdax::pci
