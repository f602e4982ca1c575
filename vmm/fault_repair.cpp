// SPDX-License-Identifier: Apache-2.0
// FaultRepairs: repair after an address-less EFAULT or a periodic scan, or give up with a reason.
#include "fault_repair.hpp"

namespace vfsdax::vmm {

std::expected<std::size_t, std::string> FaultRepairs::repair_all(RepairTrigger trigger) {
    std::size_t repaired = 0;
    for (const FaultRepair& repair : repairs_) {
        auto count = repair(trigger);
        if (!count) return std::unexpected(count.error());
        repaired += *count;
    }
    if (repaired > 0) epoch_.fetch_add(1, std::memory_order_release);
    return repaired;
}

std::expected<void, std::string> FaultRepairs::repair(uint64_t entered_at) {
    std::lock_guard lock(mutex_);
    if (epoch_.load(std::memory_order_relaxed) != entered_at) return {};
    auto repaired = repair_all(RepairTrigger::Fault);
    if (!repaired) return std::unexpected(repaired.error());
    if (*repaired == 0) {
        return std::unexpected(
            "guest memory the host cannot provide, and no DAX window has a range to repair");
    }
    return {};
}

std::expected<std::size_t, std::string> FaultRepairs::scan() {
    std::lock_guard lock(mutex_);
    return repair_all(RepairTrigger::Scan);
}

}  // namespace vfsdax::vmm
