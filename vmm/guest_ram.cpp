// SPDX-License-Identifier: Apache-2.0
// memfd-backed guest RAM.
#include "guest_ram.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <utility>

namespace vfsdax::vmm {

std::expected<GuestRam, std::string> GuestRam::create(Vm& vm, GuestMemory& memory, uint64_t size) {
    GuestRam ram;
    ram.memfd_ = UniqueFd(::memfd_create("vfsdax-guest-ram", MFD_CLOEXEC));
    if (!ram.memfd_) return std::unexpected(errno_text("memfd_create"));
    if (::ftruncate(ram.memfd_.get(), static_cast<off_t>(size)) < 0)
        return std::unexpected(errno_text("ftruncate guest RAM"));
    void* host = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                        ram.memfd_.get(), 0);
    if (host == MAP_FAILED) return std::unexpected(errno_text("mmap guest RAM"));
    // KVM maps guest memory with 2 MiB pages only where ours are 2 MiB too; each 4 KiB page the
    // guest touches first costs a nested page fault otherwise. shmem (memfd) honours the advice
    // when the host's /sys/kernel/mm/transparent_hugepage/shmem_enabled says "advise" or more;
    // elsewhere it is a no-op, so a refusal is not an error.
    (void)::madvise(host, size, MADV_HUGEPAGE);
    ram.host_ = host;
    ram.size_ = size;
    ram.layout_ = layout::RamLayout::of(size);
    auto* bytes = static_cast<std::byte*>(host);
    if (auto r = vm.set_memory_region(0, 0, ram.layout_.low_size, bytes); !r)
        return std::unexpected(r.error());
    if (!memory.add_region(GuestAddress(0), ram.layout_.low_size, bytes))
        return std::unexpected("guest RAM: GuestMemory refused the low region");
    if (ram.layout_.high_size) {
        if (auto r = vm.set_memory_region(1, layout::kHighRamStart, ram.layout_.high_size,
                                          bytes + ram.layout_.low_size);
            !r)
            return std::unexpected(r.error());
        if (!memory.add_region(GuestAddress(layout::kHighRamStart), ram.layout_.high_size,
                               bytes + ram.layout_.low_size))
            return std::unexpected("guest RAM: GuestMemory refused the high region");
    }
    return ram;
}

GuestRam::GuestRam(GuestRam&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      host_(std::exchange(other.host_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      layout_(other.layout_) {}

GuestRam::~GuestRam() {
    if (host_) ::munmap(host_, size_);
}

}  // namespace vfsdax::vmm
