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

#include "vfsdax/fs/mapper.hpp"
#include "vfsdax/fs/mapping_table.hpp"
#include "vfsdax/memory/shared_memory_region.hpp"

namespace vfsdax::fs {

struct DaxStats {
    uint64_t mappings_live = 0;
    uint64_t mappings_dead = 0;  // repaired after the host truncated their file
    uint64_t extents = 0;
    uint64_t bytes_mapped = 0;  // live mappings only
    uint64_t setups = 0;        // successful map() calls
    uint64_t removals = 0;      // successful unmap() calls (REMOVEMAPPING entries)
    uint64_t repairs = 0;
    uint64_t faulted_pages = 0;  // device accesses past a truncated end, zeroed by the handler
};

// Ties the mapping table to the host window. Every call may come from any thread (FUSE
// workers map and unmap, the VMM repairs and reads statistics); one mutex serialises them.
//
// The VMM registers [window(), window() + window_size()) once as a memory slot at the BAR's
// guest address, and adds it to GuestMemory (add_unplaced_region, place_region when the BAR is
// placed) so descriptors pointing into the window translate.
class DaxMapper final : public Mapper {
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
    std::expected<void, int> map(uint64_t window_offset, std::span<const FileExtent> extents,
                                 bool writable, uint64_t owner) override;
    // FUSE_REMOVEMAPPING entry: the range reads as zeros afterwards.
    std::expected<void, int> unmap(uint64_t window_offset, uint64_t length) override;
    // msync of the owner's writable mappings; the caller fsyncs the file afterwards.
    std::expected<void, int> sync(uint64_t owner) override;
    // msync of every writable mapping, for FUSE_SYNCFS.
    std::expected<void, int> sync_all() override;

    // For the VMM when KVM_RUN reports a fault at `window_offset` (the host shrank a mapped
    // file, so the pages past its new end cannot be provided; or the guest wrote to a read-only
    // mapping, which no driver does unprovoked): the mapping holding that offset
    // becomes anonymous memory (zeros) and is marked dead, so re-entering the guest makes
    // progress. Success too when that mapping is dead already (another vCPU repaired it).
    // ENOENT: no mapping holds the offset, it is anonymous memory already; EINVAL: outside
    // the window.
    std::expected<void, int> repair(uint64_t window_offset);

    // Which mapped ranges repair_truncated() may replace.
    enum class TruncationScope {
        // Only ranges that could be read when they were mapped and no longer can: the host
        // shrank the file under the guest. Safe to run at any time (the VMM scans periodically).
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
    // `scope`) and makes each of them, from its first page past the end, anonymous memory
    // marked dead. Returns how many ranges it repaired; 0 when nothing is broken.
    //
    // Mappings of small files reach past the end normally (the guest maps 2 MiB ranges), and
    // the guest may read such a tail through the window once the file grows again; a repaired
    // tail would read zeros then, which is why CutSinceMapped leaves them alone.
    //
    // Each mapped range is probed by copying one byte with process_vm_readv, which fails with
    // EFAULT where a load would raise SIGBUS: the kernel's own verdict, with no fd to keep per
    // mapped file. The end of the file is found by binary search, so a range costs one probe
    // when intact and about log2(its pages) when cut. Holds the lock throughout, so no FUSE
    // request remaps a range between its probe and its repair. Errors: the errno of a probe
    // that failed for another reason than EFAULT, or of replacing a range.
    std::expected<std::size_t, int> repair_truncated(TruncationScope scope);

    // For the SIGBUS handler of dax_fault_handler.hpp only (async-signal-safe, takes no lock):
    // when `address` lies in this window, its page becomes anonymous zeros and true is
    // returned. The mapping table is not touched; the periodic scan or the guest's
    // REMOVEMAPPING tidies the rest of the range.
    bool zero_faulting_page(const void* address) noexcept;

    // Device reset: every mapping goes, the whole window reads as zeros again.
    std::expected<void, int> reset() override;

    DaxStats stats() const;

private:
    DaxMapper(SharedMemoryRegion region, const MappingTable::Limits& limits)
        : region_(std::move(region)), table_(limits) {}
    std::expected<void, int> sync_ranges(std::optional<uint64_t> owner);
    // The ranges repair_truncated() replaces: those cut since mapped when `cut_since_mapped`,
    // else every mapped range past its file's end. Caller holds mutex_.
    std::expected<std::vector<WindowRange>, int> ranges_past_end(bool cut_since_mapped) const;

    mutable std::mutex mutex_;
    SharedMemoryRegion region_;
    MappingTable table_;
    uint64_t setups_ = 0;
    uint64_t removals_ = 0;
    uint64_t repairs_ = 0;
    std::atomic<uint64_t> faulted_pages_{0};
};

}  // namespace vfsdax::fs
