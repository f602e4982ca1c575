// SPDX-License-Identifier: Apache-2.0
// Serial8250: a 16550A UART as Linux's 8250 driver and earlycon use it (the guest console).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "bus.hpp"

namespace vfsdax::vmm {

// Register offsets and bits from the 16550A data sheet (the same names as Linux's serial_reg.h,
// which is not a uapi header).
namespace uart {
inline constexpr uint8_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                         kScr = 7;
inline constexpr uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerRlsi = 0x04, kIerMsi = 0x08;
inline constexpr uint8_t kIirNoInt = 0x01, kIirRlsi = 0x06, kIirRdi = 0x04, kIirThri = 0x02,
                         kIirFifos = 0xc0;
inline constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
inline constexpr uint8_t kLcrDlab = 0x80;
inline constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
inline constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrDcd = 0x80;
}  // namespace uart

// The transmitter is always ready: a byte written to THR goes straight to `output`, so THR
// and the shift register read empty and a THRE interrupt follows every write while enabled.
// The modem lines are fixed (CTS, DSR, DCD up), so modem-status interrupts never fire.
class Serial8250 : public BusDevice {
public:
    using IrqLine = std::function<void(bool level)>;
    using Output = std::function<void(std::span<const std::byte>)>;

    static constexpr std::size_t kRxCapacity = 4096;

    Serial8250(IrqLine irq, Output output);

    // Bytes from the host to the guest. Beyond kRxCapacity pending bytes the rest is dropped
    // and the guest sees an overrun.
    void receive(std::span<const std::byte> bytes);

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    uint8_t read_register(uint8_t reg);
    // The byte to transmit, when the write was one to THR.
    std::optional<std::byte> write_register(uint8_t reg, uint8_t value);
    uint8_t pending_iir() const;
    void update_irq();

    IrqLine irq_;
    Output output_;
    std::mutex mutex_;
    std::deque<std::byte> rx_;
    bool thr_interrupt_ = false;  // THRE seen by the driver yet? cleared by reading IIR
    bool overrun_ = false;
    bool irq_level_ = false;
    bool fifo_ = false;
    uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, dll_ = 0x0c, dlm_ = 0;
};

}  // namespace vfsdax::vmm
