// SPDX-License-Identifier: Apache-2.0
// InterruptRouter: turns "queue N used" and "config changed" into MSI-X messages or INTx + ISR.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "pci/msix_table.hpp"
#include "vfsdax/pci/interrupt_sink.hpp"

namespace vfsdax::pci {

// Owns everything the signal path touches, under its own lock, so that a device worker
// signalling never waits for a vCPU's config access (which may be resetting that device).
// Lock order: the transport's register lock, then this one; never the reverse.
class InterruptRouter {
public:
    InterruptRouter(InterruptSink& sink, uint16_t num_queues, uint16_t vectors);

    void signal_queue(uint16_t queue);
    void signal_config();

    // ISR status: reading returns the bits and clears them, deasserting INTx.
    uint8_t read_isr();
    bool intx_pending() const;

    // A vector beyond the table is refused: the register then reads NO_VECTOR, which is how
    // the driver learns the mapping failed.
    uint16_t set_queue_vector(uint16_t queue, uint16_t vector);
    uint16_t queue_vector(uint16_t queue) const;
    uint16_t set_config_vector(uint16_t vector);
    uint16_t config_vector() const;

    uint32_t read_table(uint64_t offset) const;
    void write_table(uint64_t offset, uint32_t value);
    uint32_t read_pba(uint64_t offset) const;
    void set_msix_control(bool enabled, bool function_masked);
    void set_intx_disabled(bool disabled);

    // The interrupt state in one line, for a report on a guest that looks stuck: ISR bits,
    // the INTx line, MSI-X (on, masked, messages waiting for an unmask).
    std::string describe() const;

    // Device reset: vectors unassigned, ISR and pending messages dropped. The MSI-X table
    // belongs to the PCI function and stays.
    void reset();

private:
    void raise(uint8_t isr_bit, uint16_t vector);
    void update_line();
    void send(const std::vector<MsiMessage>& messages);

    mutable std::mutex mutex_;
    InterruptSink& sink_;
    MsixTable table_;
    std::vector<uint16_t> queue_vectors_;
    uint16_t config_vector_;
    uint8_t isr_ = 0;
    bool intx_disabled_ = false;
    bool line_ = false;
};

}  // namespace vfsdax::pci
