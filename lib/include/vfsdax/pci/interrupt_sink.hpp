// SPDX-License-Identifier: Apache-2.0
// InterruptSink: where the PCI transport sends interrupts (a VMM: KVM_SIGNAL_MSI, KVM_IRQ_LINE).
#pragma once

#include <cstdint>

#include "vfsdax/export.hpp"

namespace vfsdax::pci {

// Called from vCPU threads (config and BAR accesses) and device worker threads, under the
// transport's interrupt lock: implementations must be thread-safe and must not call back into
// the transport.
class VFSDAX_EXPORT InterruptSink {
public:
    virtual ~InterruptSink() = default;
    // One MSI-X message, as the guest programmed it in the table.
    virtual void send_msi(uint64_t address, uint32_t data) = 0;
    // The level of the function's INTx pin (INTA#); only changes are reported.
    virtual void set_intx(bool asserted) = 0;
};

}  // namespace vfsdax::pci
