// SPDX-License-Identifier: Apache-2.0
// 16550A UART: what Linux's 8250 driver and earlycon rely on.
#include "serial.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <vector>

using namespace vfsdax::vmm;
using namespace vfsdax::vmm::uart;

namespace {

struct Uart {
    std::vector<bool> irq_changes;
    std::string out;
    Serial8250 uart{[this](bool level) { irq_changes.push_back(level); },
                    [this](std::span<const std::byte> b) {
                        for (std::byte c : b) out.push_back(static_cast<char>(c));
                    }};
    uint8_t in(uint8_t reg) {
        std::byte b{0xee};
        uart.read(reg, std::span(&b, 1));
        return static_cast<uint8_t>(b);
    }
    void put(uint8_t reg, uint8_t value) {
        const std::byte b{value};
        uart.write(reg, std::span(&b, 1));
    }
    bool irq() const { return !irq_changes.empty() && irq_changes.back(); }
};

}  // namespace

TEST_CASE("THR bytes go to the output; LSR always shows an empty transmitter") {
    Uart u;
    for (char c : std::string("hi\n")) u.put(kRbrThr, static_cast<uint8_t>(c));
    CHECK(u.out == "hi\n");
    CHECK((u.in(kLsr) & (kLsrThre | kLsrTemt)) == (kLsrThre | kLsrTemt));
    CHECK(u.in(kIirFcr) == kIirNoInt);
    CHECK(u.irq_changes.empty());
}

TEST_CASE("enabling THRI raises a THRE interrupt that reading IIR acknowledges") {
    Uart u;
    u.put(kIer, kIerThri);
    CHECK(u.irq());
    CHECK(u.in(kIirFcr) == kIirThri);
    CHECK_FALSE(u.irq());
    CHECK(u.in(kIirFcr) == kIirNoInt);
    // Each transmitted byte leaves THR empty again: another THRE interrupt.
    u.put(kRbrThr, 'x');
    CHECK(u.irq());
    CHECK(u.in(kIirFcr) == kIirThri);
    // Turning THRI off withdraws a pending THRE.
    u.put(kRbrThr, 'y');
    CHECK(u.irq());
    u.put(kIer, 0);
    CHECK_FALSE(u.irq());
    // Linux's startup check: clear IER, set THRI again, and THRE must be asserted once more.
    u.put(kIer, kIerThri);
    CHECK(u.in(kIirFcr) == kIirThri);
}

TEST_CASE("received bytes show in LSR, raise RDI when enabled and read back in order") {
    Uart u;
    const std::byte input[] = {std::byte{'a'}, std::byte{'b'}};
    u.uart.receive(input);
    CHECK(u.irq_changes.empty());  // RDI not enabled yet
    CHECK((u.in(kLsr)&kLsrDr) != 0);
    u.put(kIer, kIerRdi);
    CHECK(u.irq());
    CHECK(u.in(kIirFcr) == kIirRdi);
    CHECK(u.in(kRbrThr) == 'a');
    CHECK(u.irq());
    CHECK(u.in(kRbrThr) == 'b');
    CHECK_FALSE(u.irq());
    CHECK((u.in(kLsr)&kLsrDr) == 0);
    CHECK(u.in(kIirFcr) == kIirNoInt);
}

TEST_CASE("received data outranks THRE in IIR") {
    Uart u;
    u.put(kIer, kIerRdi | kIerThri);
    const std::byte input[] = {std::byte{'z'}};
    u.uart.receive(input);
    CHECK(u.in(kIirFcr) == kIirRdi);
    CHECK(u.in(kRbrThr) == 'z');
    CHECK(u.in(kIirFcr) == kIirThri);
}

TEST_CASE("overrun beyond the receive buffer shows once in LSR and as a line status interrupt") {
    Uart u;
    std::vector<std::byte> flood(Serial8250::kRxCapacity + 1, std::byte{'q'});
    u.uart.receive(flood);
    u.put(kIer, kIerRlsi);
    CHECK(u.in(kIirFcr) == kIirRlsi);
    CHECK((u.in(kLsr)&kLsrOe) != 0);
    CHECK((u.in(kLsr)&kLsrOe) == 0);
    CHECK_FALSE(u.irq());
}

TEST_CASE("DLAB switches offsets 0 and 1 to the divisor latch") {
    Uart u;
    u.put(kLcr, kLcrDlab | 0x03);
    u.put(kRbrThr, 0x01);
    u.put(kIer, 0x02);
    CHECK(u.out.empty());  // a divisor write is not a character
    CHECK(u.in(kRbrThr) == 0x01);
    CHECK(u.in(kIer) == 0x02);
    CHECK(u.in(kLcr) == (kLcrDlab | 0x03));
    u.put(kLcr, 0x03);
    CHECK(u.in(kIer) == 0);  // IER untouched by the DLM write
}

TEST_CASE("FCR enables the FIFO bits in IIR; SCR, MCR and MSR") {
    Uart u;
    u.put(kIirFcr, kFcrEnable);
    CHECK(u.in(kIirFcr) == (kIirFifos | kIirNoInt));
    u.put(kScr, 0xa5);
    CHECK(u.in(kScr) == 0xa5);
    u.put(kMcr, 0xff);
    CHECK(u.in(kMcr) == 0x1f);
    CHECK(u.in(kMsr) == (kMsrCts | kMsrDsr | kMsrDcd));
    u.put(kIer, 0xff);
    CHECK(u.in(kIer) == 0x0f);
}

TEST_CASE("host input gets in while output is blocked (a console reader that stopped reading)") {
    std::promise<void> output_entered;
    std::promise<void> unblock;
    std::shared_future<void> unblocked = unblock.get_future().share();
    Serial8250 uart{[](bool) {},
                    [&](std::span<const std::byte>) {
                        output_entered.set_value();
                        unblocked.wait();
                    }};
    auto guest = std::async(std::launch::async, [&] {
        const std::byte b{'x'};
        uart.write(kRbrThr, std::span(&b, 1));
    });
    output_entered.get_future().wait();
    auto host = std::async(std::launch::async, [&] {
        const std::byte b{'y'};
        uart.receive(std::span(&b, 1));
    });
    const bool got_in = host.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    unblock.set_value();
    guest.wait();
    host.wait();
    CHECK(got_in);
    std::byte lsr{};
    uart.read(kLsr, std::span(&lsr, 1));
    CHECK((static_cast<uint8_t>(lsr) & kLsrDr) != 0);
}
