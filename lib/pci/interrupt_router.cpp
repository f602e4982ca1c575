// SPDX-License-Identifier: Apache-2.0
// InterruptRouter: MSI-X delivery when enabled, else INTx with the ISR status bits.
#include "pci/interrupt_router.hpp"

#include <fmt/format.h>

#include "pci/virtio_pci_regs.hpp"
#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::pci {

InterruptRouter::InterruptRouter(InterruptSink& sink, uint16_t num_queues, uint16_t vectors)
    : sink_(sink),
      table_(vectors),
      queue_vectors_(num_queues, VIRTIO_MSI_NO_VECTOR),
      config_vector_(VIRTIO_MSI_NO_VECTOR) {}

void InterruptRouter::signal_queue(uint16_t queue) {
    std::lock_guard lock(mutex_);
    if (queue >= queue_vectors_.size()) return;
    raise(kIsrQueue, queue_vectors_[queue]);
}

void InterruptRouter::signal_config() {
    std::lock_guard lock(mutex_);
    raise(VIRTIO_PCI_ISR_CONFIG, config_vector_);
}

uint8_t InterruptRouter::read_isr() {
    std::lock_guard lock(mutex_);
    const uint8_t bits = isr_;
    isr_ = 0;
    update_line();
    return bits;
}

bool InterruptRouter::intx_pending() const {
    std::lock_guard lock(mutex_);
    return !table_.enabled() && isr_ != 0;
}

uint16_t InterruptRouter::set_queue_vector(uint16_t queue, uint16_t vector) {
    std::lock_guard lock(mutex_);
    if (queue >= queue_vectors_.size()) return VIRTIO_MSI_NO_VECTOR;
    queue_vectors_[queue] = vector < table_.size() ? vector : VIRTIO_MSI_NO_VECTOR;
    return queue_vectors_[queue];
}

uint16_t InterruptRouter::queue_vector(uint16_t queue) const {
    std::lock_guard lock(mutex_);
    return queue < queue_vectors_.size() ? queue_vectors_[queue] : VIRTIO_MSI_NO_VECTOR;
}

uint16_t InterruptRouter::set_config_vector(uint16_t vector) {
    std::lock_guard lock(mutex_);
    config_vector_ = vector < table_.size() ? vector : VIRTIO_MSI_NO_VECTOR;
    return config_vector_;
}

uint16_t InterruptRouter::config_vector() const {
    std::lock_guard lock(mutex_);
    return config_vector_;
}

uint32_t InterruptRouter::read_table(uint64_t offset) const {
    std::lock_guard lock(mutex_);
    return table_.read_table(offset);
}

void InterruptRouter::write_table(uint64_t offset, uint32_t value) {
    std::lock_guard lock(mutex_);
    std::vector<MsiMessage> out;
    table_.write_table(offset, value, out);
    send(out);
}

uint32_t InterruptRouter::read_pba(uint64_t offset) const {
    std::lock_guard lock(mutex_);
    return table_.read_pba(offset);
}

void InterruptRouter::set_msix_control(bool enabled, bool function_masked) {
    std::lock_guard lock(mutex_);
    // What the ISR latched under MSI-X went out as messages: owed no INTx once MSI-X is off
    // (a pin raised for it would find no handler, as QEMU never raises one either).
    if (table_.enabled() && !enabled) isr_ = 0;
    std::vector<MsiMessage> out;
    table_.set_control(enabled, function_masked, out);
    send(out);
    update_line();
}

void InterruptRouter::set_intx_disabled(bool disabled) {
    std::lock_guard lock(mutex_);
    intx_disabled_ = disabled;
    update_line();
}

void InterruptRouter::reset() {
    std::lock_guard lock(mutex_);
    for (uint16_t& v : queue_vectors_) v = VIRTIO_MSI_NO_VECTOR;
    config_vector_ = VIRTIO_MSI_NO_VECTOR;
    isr_ = 0;
    table_.clear_pending();
    update_line();
}

std::string InterruptRouter::describe() const {
    std::lock_guard lock(mutex_);
    std::string text =
        fmt::format("ISR {:#04x}, INTx {}{}, MSI-X {}", isr_, line_ ? "high" : "low",
                    intx_disabled_ ? " (disabled)" : "", table_.enabled() ? "on" : "off");
    if (table_.enabled() && table_.function_masked()) text += " (function masked)";
    if (const unsigned pending = table_.pending_count()) {
        text += fmt::format(", {} MSI-X messages pending", pending);
    }
    return text;
}

void InterruptRouter::raise(uint8_t isr_bit, uint16_t vector) {
    // The ISR bit is set in both modes, as a driver polling it expects (virtio 1.2, 4.1.4.5).
    isr_ |= isr_bit;
    if (table_.enabled()) {
        if (auto message = table_.fire(vector)) sink_.send_msi(message->address, message->data);
    } else {
        update_line();
    }
}

void InterruptRouter::update_line() {
    const bool level = !table_.enabled() && !intx_disabled_ && isr_ != 0;
    if (level == line_) return;
    line_ = level;
    sink_.set_intx(level);
}

void InterruptRouter::send(const std::vector<MsiMessage>& messages) {
    for (const MsiMessage& m : messages) sink_.send_msi(m.address, m.data);
}

}  // namespace vfsdax::pci
