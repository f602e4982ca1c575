// SPDX-License-Identifier: Apache-2.0
// GuestRam: the guest's RAM as one memfd, mapped once and split around the PCI hole.
#pragma once

#include <cstdint>
#include <expected>
#include <string>

#include "kvm.hpp"
#include "layout.hpp"
#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::vmm {

class GuestRam {
public:
    // memfd of `size` bytes (shared with nobody yet, but a memfd lets a later vhost-user or
    // snapshot hand the same pages on), registered as KVM slots 0 (below the PCI hole) and
    // 1 (above 4 GiB, when larger than 3 GiB) and added to `memory`.
    static std::expected<GuestRam, std::string> create(Vm& vm, GuestMemory& memory, uint64_t size);

    GuestRam(GuestRam&& other) noexcept;
    GuestRam& operator=(GuestRam&&) = delete;
    ~GuestRam();

    layout::RamLayout ram_layout() const { return layout_; }
    // KVM slots from here on are free for others (DAX windows).
    static constexpr uint32_t kFirstFreeSlot = 2;

private:
    GuestRam() = default;
    UniqueFd memfd_;
    void* host_ = nullptr;
    uint64_t size_ = 0;
    layout::RamLayout layout_{};
};

}  // namespace vfsdax::vmm
