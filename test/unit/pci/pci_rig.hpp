// SPDX-License-Identifier: Apache-2.0
// PciRig: guest RAM, an echo device behind a transport, and the guest-side driver model.
#pragma once

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pci/echo_device.hpp"
#include "pci/transport_bus.hpp"
#include "pci/virtio_pci_driver.hpp"
#include "test_memory.hpp"
#include "vfsdax/pci/virtio_pci_transport.hpp"

namespace vfsdax::test {

struct PciRig {
    explicit PciRig(EchoDevice::Options options = {})
        : device(std::move(options)),
          transport(make(device, ram, sink)),
          bus(*transport),
          driver(bus) {
        transport->set_bar_listener([this](const pci::BarInfo& bar) { bar_events.push_back(bar); });
        transport->set_needs_reset_listener(
            [this](std::string_view reason) { reset_reasons.emplace_back(reason); });
    }

    PciRig(PciRig&&) = delete;

    // Enumerated and probed: the state Linux's virtio_pci_modern leaves a device in.
    PciRig& probe() {
        driver.enumerate();
        auto probed = driver.probe();
        INFO((probed ? std::string("ok") : probed.error()));
        REQUIRE(probed);
        return *this;
    }

    static std::optional<pci::VirtioPciTransport> make(EchoDevice& device, TestMemory& ram,
                                                       RecordingSink& sink) {
        auto created = pci::VirtioPciTransport::create(device, ram.memory(), sink);
        INFO((created ? std::string("ok") : created.error()));
        REQUIRE(created);
        return std::move(*created);
    }

    TestMemory ram{4 << 20};
    RecordingSink sink;
    EchoDevice device;
    std::optional<pci::VirtioPciTransport> transport;
    TransportBus bus;
    VirtioPciDriver driver;
    std::vector<pci::BarInfo> bar_events;
    std::vector<std::string> reset_reasons;  // what NEEDS_RESET was set for, in order
};

}  // namespace vfsdax::test
