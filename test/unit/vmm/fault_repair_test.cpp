// SPDX-License-Identifier: Apache-2.0
// FaultRepairs: when a vCPU whose KVM_RUN failed with EFAULT re-enters the guest, and when it
// stops.
#include "fault_repair.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <string>

using vfsdax::vmm::FaultRepairs;
using vfsdax::vmm::RepairTrigger;

namespace {

// A repair that reports `count` repaired ranges on every call, and counts its calls by trigger.
struct FakeWindow {
    std::size_t count = 0;
    int calls = 0;
    int scans = 0;
    vfsdax::vmm::FaultRepair repair() {
        return [this](RepairTrigger trigger) -> std::expected<std::size_t, std::string> {
            ++(trigger == RepairTrigger::Scan ? scans : calls);
            return count;
        };
    }
};

}  // namespace

TEST_CASE("with nothing to repair the vCPU stops, with a reason") {
    FaultRepairs repairs;
    auto none = repairs.repair(repairs.epoch());
    REQUIRE_FALSE(none);
    CHECK(none.error().find("no DAX window has a range to repair") != std::string::npos);

    FakeWindow intact;
    repairs.add(intact.repair());
    CHECK_FALSE(repairs.repair(repairs.epoch()));
    CHECK(intact.calls == 1);
    CHECK(repairs.epoch() == 0);
}

TEST_CASE("every window is asked; one repair is enough to re-enter") {
    FaultRepairs repairs;
    FakeWindow intact, cut{.count = 2};
    repairs.add(intact.repair());
    repairs.add(cut.repair());
    CHECK(repairs.repair(repairs.epoch()));
    CHECK(intact.calls == 1);
    CHECK(cut.calls == 1);
    CHECK(repairs.epoch() == 1);
}

TEST_CASE("a vCPU that faulted before another's repair re-enters without repairing again") {
    FaultRepairs repairs;
    FakeWindow cut{.count = 1};
    repairs.add(cut.repair());
    const uint64_t entered_at = repairs.epoch();  // both vCPUs entered here
    REQUIRE(repairs.repair(entered_at));          // the first to fault repairs
    CHECK(repairs.repair(entered_at));            // the second one just re-enters
    CHECK(cut.calls == 1);
    // Faulting again after re-entering is a new fault.
    cut.count = 0;
    CHECK_FALSE(repairs.repair(repairs.epoch()));
    CHECK(cut.calls == 2);
}

TEST_CASE("a repair that fails stops the vCPU with its reason") {
    FaultRepairs repairs;
    repairs.add([](RepairTrigger) -> std::expected<std::size_t, std::string> {
        return std::unexpected("virtio-fs \"x\": DAX repair: Cannot allocate memory");
    });
    auto failed = repairs.repair(repairs.epoch());
    REQUIRE_FALSE(failed);
    CHECK(failed.error() == "virtio-fs \"x\": DAX repair: Cannot allocate memory");
}

TEST_CASE("a scan asks every window for certain breakage and counts as a repair") {
    FaultRepairs repairs;
    FakeWindow intact, cut{.count = 1};
    repairs.add(intact.repair());
    repairs.add(cut.repair());
    const uint64_t entered_at = repairs.epoch();
    auto scanned = repairs.scan();
    REQUIRE(scanned);
    CHECK(*scanned == 1);
    CHECK(intact.scans == 1);
    CHECK(cut.scans == 1);
    CHECK(intact.calls == 0);
    // A vCPU that faulted before the scan's repair re-enters without another repair.
    CHECK(repairs.repair(entered_at));
    CHECK(cut.calls == 0);

    // A scan that finds nothing leaves the epoch alone.
    cut.count = 0;
    const uint64_t before = repairs.epoch();
    REQUIRE(repairs.scan() == std::size_t{0});
    CHECK(repairs.epoch() == before);
}
