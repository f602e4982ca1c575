// SPDX-License-Identifier: Apache-2.0
// 16550A register behaviour for the guest console.
#include "serial.hpp"

namespace vfsdax::vmm {

using namespace uart;

Serial8250::Serial8250(IrqLine irq, Output output)
    : irq_(std::move(irq)), output_(std::move(output)) {}

void Serial8250::receive(std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    for (std::byte b : bytes) {
        if (rx_.size() == kRxCapacity) {
            overrun_ = true;
            break;
        }
        rx_.push_back(b);
    }
    update_irq();
}

// Linux drives the UART with byte accesses; a wider access touches its first register only.
void Serial8250::read(uint64_t offset, std::span<std::byte> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    std::fill(data.begin(), data.end(), std::byte{0});
    data[0] = std::byte{read_register(static_cast<uint8_t>(offset))};
    update_irq();
}

void Serial8250::write(uint64_t offset, std::span<const std::byte> data) {
    if (data.empty()) return;
    std::optional<std::byte> sent;
    {
        std::lock_guard lock(mutex_);
        sent = write_register(static_cast<uint8_t>(offset), static_cast<uint8_t>(data[0]));
        update_irq();
    }
    // Outside the lock: output may block (a reader that stopped reading), and input from the
    // host must still get in meanwhile.
    if (sent) output_(std::span(&*sent, 1));
}

uint8_t Serial8250::pending_iir() const {
    if ((ier_ & kIerRlsi) && overrun_) return kIirRlsi;
    if ((ier_ & kIerRdi) && !rx_.empty()) return kIirRdi;
    if ((ier_ & kIerThri) && thr_interrupt_) return kIirThri;
    return kIirNoInt;
}

void Serial8250::update_irq() {
    const bool level = pending_iir() != kIirNoInt;
    if (level != irq_level_) {
        irq_level_ = level;
        irq_(level);
    }
}

uint8_t Serial8250::read_register(uint8_t reg) {
    const bool dlab = lcr_ & kLcrDlab;
    switch (reg) {
        case kRbrThr: {
            if (dlab) return dll_;
            if (rx_.empty()) return 0;
            const uint8_t b = static_cast<uint8_t>(rx_.front());
            rx_.pop_front();
            return b;
        }
        case kIer:
            return dlab ? dlm_ : ier_;
        case kIirFcr: {
            const uint8_t iir = pending_iir();
            // Reading IIR acknowledges a THRE interrupt (16550A data sheet).
            if (iir == kIirThri) thr_interrupt_ = false;
            return iir | (fifo_ ? kIirFifos : 0);
        }
        case kLcr:
            return lcr_;
        case kMcr:
            return mcr_;
        case kLsr: {
            uint8_t lsr = kLsrThre | kLsrTemt;
            if (!rx_.empty()) lsr |= kLsrDr;
            if (overrun_) lsr |= kLsrOe;
            overrun_ = false;  // reading LSR clears the error bits
            return lsr;
        }
        case kMsr:
            return kMsrCts | kMsrDsr | kMsrDcd;
        case kScr:
            return scr_;
        default:
            return 0;
    }
}

std::optional<std::byte> Serial8250::write_register(uint8_t reg, uint8_t value) {
    const bool dlab = lcr_ & kLcrDlab;
    switch (reg) {
        case kRbrThr:
            if (dlab) {
                dll_ = value;
            } else {
                thr_interrupt_ = true;
                return std::byte{value};
            }
            break;
        case kIer:
            if (dlab) {
                dlm_ = value;
            } else {
                const uint8_t enabled = value & ~ier_;
                ier_ = value & (kIerRdi | kIerThri | kIerRlsi | kIerMsi);
                // Enabling THRE while the transmitter is empty raises it at once; Linux's 8250
                // driver checks for exactly that at startup.
                if (enabled & kIerThri) thr_interrupt_ = true;
                if (!(ier_ & kIerThri)) thr_interrupt_ = false;
            }
            break;
        case kIirFcr:
            fifo_ = value & kFcrEnable;
            if (value & kFcrClearRx) rx_.clear();
            break;
        case kLcr:
            lcr_ = value;
            break;
        case kMcr:
            mcr_ = value & 0x1f;
            break;
        case kScr:
            scr_ = value;
            break;
        default:  // LSR and MSR are read-only
            break;
    }
    return std::nullopt;
}

}  // namespace vfsdax::vmm
