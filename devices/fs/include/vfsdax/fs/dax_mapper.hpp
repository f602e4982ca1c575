// SPDX-License-Identifier: Apache-2.0
// DaxMapper: the virtio-fs DAX window (shared memory region 0) behind the FUSE server's Mapper.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "vfsdax/export.hpp"
#include "vfsdax/fs/mapper.hpp"
#include "vfsdax/memory/shared_memory_region.hpp"

namespace vfsdax::fs {

// The window's bookkeeping, private to the library (dax/mapping_table.hpp).
class MappingTable;
struct MappedExtent;

struct DaxStats {
    uint64_t mappings_live = 0;
    uint64_t mappings_dead = 0;  // killed: the guest stored into a read-only mapping
    uint64_t extents = 0;
    uint64_t extents_shadowed = 0;  // now partly anonymous: their file ends before them
    uint64_t bytes_mapped = 0;      // live mappings only
    uint64_t setups = 0;            // successful map() calls
    uint64_t removals = 0;          // successful unmap() calls (REMOVEMAPPING entries)
    uint64_t repairs = 0;           // ranges shadowed or mappings killed
    uint64_t restores = 0;          // shadowed ranges mapped back to their file
    uint64_t faulted_pages = 0;     // device accesses past a file's end, zeroed by the handler
};

// Ties the mapping table to the host window. Every call may come from any thread (FUSE
// workers map and unmap, the VMM repairs and reads statistics); one mutex serialises them.
//
// A window range the guest set up maps its file until the guest removes it. Where the file
// ends before the range does (the host or the guest truncated it), the pages past the end
// cannot be faulted in, and a guest or device access there would fault for ever or kill the
// VMM; so the mapper *shadows* them: they become anonymous zeros, while the table still holds
// the extent and a descriptor of the file. As soon as the file covers them again the file is
// mapped back (follow_file_size() for the guest's own size changes, before the guest is
// answered; the periodic repair_truncated() for the host's), so no store meant for the file
// lands in the shadow. docs/dax.md has the rules case by case.
//
// The VMM registers [window(), window() + window_size()) once as a memory slot at the BAR's
// guest address, and adds it to GuestMemory (add_unplaced_region, place_region when the BAR is
// placed) so descriptors pointing into the window translate.
class VFSDAX_EXPORT DaxMapper final : public Mapper {
public:
    // The Linux guest maps 2 MiB ranges, so the window comes in those units.
    static constexpr uint64_t kWindowUnit = uint64_t{2} << 20;
    static constexpr uint64_t kDefaultWindowSize = uint64_t{1} << 30;
    // Each extent costs one host mapping (a VMA) plus, at worst, one anonymous VMA beside it;
    // this keeps a window well inside the kernel's default vm.max_map_count (65530).
    static constexpr std::size_t kDefaultMaxExtents = 8192;

    struct Config {
        uint64_t window_size = kDefaultWindowSize;  // a nonzero multiple of kWindowUnit
        std::size_t max_extents = kDefaultMaxExtents;
    };

    // Reserves the window. EINVAL for a bad size or a zero extent limit; EMFILE when the
    // process has too many windows for the fault handler (dax_fault_handler.hpp) to watch;
    // mmap's errno otherwise.
    static std::expected<std::unique_ptr<DaxMapper>, int> create(const Config& config);
    ~DaxMapper() override;

    std::byte* window() const { return region_.host(); }
    uint64_t window_size() const override { return region_.size(); }
    // log2 of the mapping granularity (the host page), for FUSE_INIT's map_alignment.
    uint32_t map_alignment() const override;

    // FUSE_SETUPMAPPING. Each fd must be open for reading, and for writing too if `writable`
    // (EACCES otherwise, EBADF for a bad or O_PATH fd). Over existing mappings this is checked
    // before anything changes, so a refused upgrade leaves the read-only mapping in place. Any
    // other refusal by mmap leaves the whole target range unmapped, and returns its errno.
    // Each extent keeps a duplicate of its fd while it is mapped (EMFILE/ENFILE when none can
    // be had), so a shadowed range can be mapped back.
    std::expected<void, int> map(uint64_t window_offset, std::span<const FileExtent> extents,
                                 bool writable, uint64_t owner) override;
    // FUSE_REMOVEMAPPING entry: the range reads as zeros afterwards.
    std::expected<void, int> unmap(uint64_t window_offset, uint64_t length) override;
    // Maps the file back over `owner`'s shadowed ranges wherever the file covers them now.
    // Errors: fstat's or mmap's errno; those ranges stay shadowed.
    std::expected<void, int> follow_file_size(uint64_t owner) override;
    // msync of the owner's writable mappings; the caller fsyncs the file afterwards.
    std::expected<void, int> sync(uint64_t owner) override;
    // msync of every writable mapping, for FUSE_SYNCFS.
    std::expected<void, int> sync_all() override;

    // For a VMM whose KVM names the faulting address (KVM_EXIT_MEMORY_FAULT): when the page at
    // `window_offset` lies past its file's end, its extent is shadowed from the file's end on
    // (mapped back once the file covers it again); when the file covers it (the guest wrote to
    // a read-only mapping, which no driver does unprovoked), the whole mapping becomes
    // anonymous memory and is marked dead. Either way re-entering the guest makes progress.
    // Success too when the page is shadowed or dead already (another vCPU repaired it).
    // ENOENT: no mapping holds the offset, it is anonymous memory already; EINVAL: outside
    // the window.
    std::expected<void, int> repair(uint64_t window_offset);

    // Which mapped ranges repair_truncated() may replace.
    enum class TruncationScope {
        // Only ranges that could be read when they were mapped (or mapped back) and no longer
        // can: the file shrank under the mapping. Safe to run at any time (the VMM scans
        // periodically).
        CutSinceMapped,
        // Those; or, when there are none, every mapped range past its file's end. For after a
        // guest fault the first scope does not explain (the file grew after it was mapped,
        // then shrank).
        CutOrAnyPastEnd,
    };

    // For the VMM, which cannot always name the faulting address: Linux before 6.8 reports a
    // window page it cannot fault in only as an EFAULT from KVM_RUN, and while the guest has
    // interrupts on its asynchronous page faults retry such a page inside KVM_RUN, never
    // returning at all. Finds the mapped file ranges that lie past their file's end (see
    // `scope`) and shadows each of them from its first page past the end. Then maps the file
    // back over every shadowed range the file covers again (the host grew it), and takes in
    // the pages the fault handler zeroed. Returns how many ranges it shadowed; 0 when nothing
    // is broken.
    //
    // Mappings of small files reach past the end normally (the guest maps 2 MiB ranges) and
    // the guest never touches such a tail while it lies past the end, so CutSinceMapped leaves
    // them alone: each shadow costs the host a mapping.
    //
    // Each mapped range is probed by copying one byte with process_vm_readv, which fails with
    // EFAULT where a load would raise SIGBUS: the kernel's own verdict, with no fd to keep per
    // mapped file. The end of the file is found by binary search, so a range costs one probe
    // when intact and about log2(its pages) when cut. Holds the lock throughout, so no FUSE
    // request remaps a range between its probe and its repair. Errors: the errno of a probe
    // that failed for another reason than EFAULT, or of replacing a range.
    std::expected<std::size_t, int> repair_truncated(TruncationScope scope);

    // For the SIGBUS handler of dax_fault_handler.hpp only (async-signal-safe, takes no lock):
    // when `address` lies in this window, its page becomes anonymous zeros, is noted for the
    // next locked call (which shadows its extent from there and maps back what the file
    // covers) and true is returned.
    bool zero_faulting_page(const void* address) noexcept;

    // Device reset: every mapping goes, the whole window reads as zeros again.
    std::expected<void, int> reset() override;

    DaxStats stats() const;

private:
    VFSDAX_LOCAL DaxMapper(SharedMemoryRegion region, std::unique_ptr<MappingTable> table);
    VFSDAX_LOCAL std::expected<void, int> sync_ranges(std::optional<uint64_t> owner);

    // The rest need mutex_ held.
    // The window from byte `from` of extent `e` (at window offset `at`) becomes anonymous.
    VFSDAX_LOCAL std::expected<void, int> shadow(uint64_t at, MappedExtent& e, uint64_t from);
    // Maps the file back over the part of e's shadow that the file covers now.
    VFSDAX_LOCAL std::expected<void, int> restore(uint64_t at, MappedExtent& e, bool writable);
    VFSDAX_LOCAL std::expected<void, int> restore_covered(std::optional<uint64_t> owner);
    // Shadows the mapped ranges past their file's end: those cut since mapped when
    // `cut_since_mapped`, else every one. Returns how many.
    VFSDAX_LOCAL std::expected<std::size_t, int> shadow_past_end(bool cut_since_mapped);
    // Takes in the pages zero_faulting_page() zeroed: their extents are shadowed from there,
    // and mapped back where the file covers them (a store into a read-only mapping).
    VFSDAX_LOCAL std::expected<void, int> absorb_faulted_pages();

    mutable std::mutex mutex_;
    SharedMemoryRegion region_;
    std::unique_ptr<MappingTable> table_;
    uint64_t setups_ = 0;
    uint64_t removals_ = 0;
    uint64_t repairs_ = 0;
    uint64_t restores_ = 0;
    std::atomic<uint64_t> faulted_pages_{0};
    // One bit per window page the fault handler zeroed and no locked call has taken in yet.
    std::unique_ptr<std::atomic<uint64_t>[]> faulted_bits_;
    std::atomic<bool> faults_pending_{false};
};

}  // namespace vfsdax::fs
