// SPDX-License-Identifier: Apache-2.0
// FaultRepairs: guest memory whose host pages cannot be faulted in (a DAX window page past the
// end of a file the host shrank), found after KVM_RUN failed with EFAULT or by a periodic scan.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace vfsdax::vmm {

// Why a repair is asked for, which bounds what it may take.
enum class RepairTrigger {
    // The periodic scan: only what is certainly broken (ranges the host cut under a mapping).
    Scan,
    // A vCPU's KVM_RUN failed with EFAULT: something the guest touched is broken.
    Fault,
};

// One owner of host memory behind guest memory (a DAX window) repairs what of it the guest can
// no longer fault in: how many ranges it repaired (0: none of its own was broken), or why it
// could not.
using FaultRepair = std::function<std::expected<std::size_t, std::string>(RepairTrigger)>;

// Linux's KVM before 6.8 names no address for such a fault, so every repair is asked. Worse,
// while the guest has interrupts on, KVM hands the fault to its asynchronous page-fault worker,
// whose failure only makes the vCPU retry: KVM_RUN never returns and only a scan that repairs
// the range lets the guest go on. Re-entering after an EFAULT is worth it only if something
// was repaired; when nothing was, the fault would repeat forever and the vCPU must stop.
class FaultRepairs {
public:
    // Before run(): repairs are not added while vCPUs fault.
    void add(FaultRepair repair) { repairs_.push_back(std::move(repair)); }
    bool empty() const { return repairs_.empty(); }

    // Read before each KVM_RUN and passed to repair() after it failed: a repair another vCPU
    // (or a scan) made meanwhile may be the one this fault needed (they fault on the same
    // page), and repairing again would cut off ranges nobody touched.
    uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

    // After KVM_RUN, entered at `entered_at`, failed with EFAULT: success means re-enter.
    std::expected<void, std::string> repair(uint64_t entered_at);

    // The periodic scan (RepairTrigger::Scan): how many ranges were repaired.
    std::expected<std::size_t, std::string> scan();

private:
    std::expected<std::size_t, std::string> repair_all(RepairTrigger trigger);

    std::vector<FaultRepair> repairs_;
    std::mutex mutex_;  // one repair at a time
    std::atomic<uint64_t> epoch_{0};
};

}  // namespace vfsdax::vmm
