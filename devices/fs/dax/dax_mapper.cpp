// DaxMapper: the mapping table and the host window kept in step under one lock.
#include "vfsdax/fs/dax_mapper.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "dax/fault_windows.hpp"

namespace vfsdax::fs {

namespace {

uint64_t page_size() {
    return static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// mmap would refuse these too, but only after tearing down what the target range held; checking
// first keeps a refused request (say, an upgrade to writable on a read-only handle) harmless.
std::expected<void, int> check_access(int fd, bool writable) {
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_PATH) != 0) return std::unexpected(EBADF);
    const int mode = flags & O_ACCMODE;
    if (mode == O_WRONLY || (writable && mode != O_RDWR)) return std::unexpected(EACCES);
    return {};
}

// Whether the page at `at` can be read, asked of the kernel: where a load would raise SIGBUS
// (past the end of a shrunk file) the copy fails with EFAULT instead.
std::expected<bool, int> readable(const std::byte* at) {
    char byte;
    iovec local{&byte, 1};
    iovec remote{const_cast<std::byte*>(at), 1};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1) return true;
    if (errno == EFAULT) return false;
    return std::unexpected(errno);
}

// The offset of the first unreadable page of [at, at + length), whose last page is unreadable.
// A file mapping turns unreadable at the file's end and stays so, which the search relies on.
std::expected<uint64_t, int> first_unreadable(const std::byte* at, uint64_t length) {
    const uint64_t page = page_size();
    uint64_t good = 0, bad = length / page - 1;  // pages: the answer lies in [good, bad]
    while (good < bad) {
        const uint64_t middle = good + (bad - good) / 2;
        auto ok = readable(at + middle * page);
        if (!ok) return std::unexpected(ok.error());
        if (*ok) {
            good = middle + 1;
        } else {
            bad = middle;
        }
    }
    return bad * page;
}

}  // namespace

std::expected<std::unique_ptr<DaxMapper>, int> DaxMapper::create(const Config& config) {
    if (config.window_size == 0 || config.window_size % kWindowUnit != 0 ||
        config.max_extents == 0) {
        return std::unexpected(EINVAL);
    }
    auto region = SharedMemoryRegion::reserve(config.window_size);
    if (!region) return std::unexpected(region.error());
    const MappingTable::Limits limits{config.window_size, page_size(), config.max_extents};
    std::unique_ptr<DaxMapper> mapper(new DaxMapper(std::move(*region), limits));
    if (!watch_for_faults(mapper.get())) return std::unexpected(EMFILE);
    return mapper;
}

DaxMapper::~DaxMapper() {
    unwatch_for_faults(this);
}

bool DaxMapper::zero_faulting_page(const void* address) noexcept {
    const auto at = reinterpret_cast<uintptr_t>(address);
    const auto start = reinterpret_cast<uintptr_t>(region_.host());
    if (at < start || at - start >= region_.size()) return false;
    const uint64_t page = page_size();
    if (!region_.discard((at - start) / page * page, page)) return false;
    faulted_pages_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

uint32_t DaxMapper::map_alignment() const {
    return static_cast<uint32_t>(__builtin_ctzll(page_size()));
}

std::expected<void, int> DaxMapper::map(uint64_t window_offset, std::span<const FileExtent> extents,
                                        bool writable, uint64_t owner) {
    std::vector<MappedExtent> pieces;
    pieces.reserve(extents.size());
    uint64_t total = 0;
    const uint64_t page = page_size();
    for (const FileExtent& e : extents) {
        struct stat st;
        if (fstat(e.fd, &st) != 0) return std::unexpected(EBADF);
        const auto size = static_cast<uint64_t>(st.st_size);
        pieces.push_back({e.offset, e.length, (size + page - 1) / page * page});
        if (__builtin_add_overflow(total, e.length, &total)) total = ~uint64_t{0};
    }
    std::lock_guard lock(mutex_);
    // Only a request over existing mappings has anything to lose if mmap refuses it midway;
    // into a free range (the common case) the extra syscall per extent is saved.
    if (table_.occupied(window_offset, total)) {
        for (const FileExtent& e : extents) {
            if (auto ok = check_access(e.fd, writable); !ok) return ok;
        }
    }
    if (auto ok = table_.insert(window_offset, pieces, writable, owner); !ok) return ok;
    uint64_t at = window_offset;
    for (const FileExtent& e : extents) {
        if (auto ok = region_.map(at, e.length, e.fd, e.offset, writable); !ok) {
            // The table accepted the range, so `total` is its exact length; leave it all
            // unmapped rather than half of a mapping the guest was told failed.
            (void)region_.discard(window_offset, total);
            (void)table_.remove(window_offset, total);
            return ok;
        }
        at += e.length;
    }
    ++setups_;
    return {};
}

std::expected<void, int> DaxMapper::unmap(uint64_t window_offset, uint64_t length) {
    std::lock_guard lock(mutex_);
    if (auto ok = table_.remove(window_offset, length); !ok) return ok;
    if (auto ok = region_.discard(window_offset, length); !ok) return ok;
    ++removals_;
    return {};
}

std::expected<void, int> DaxMapper::sync(uint64_t owner) {
    return sync_ranges(owner);
}

std::expected<void, int> DaxMapper::sync_all() {
    return sync_ranges(std::nullopt);
}

std::expected<void, int> DaxMapper::sync_ranges(std::optional<uint64_t> owner) {
    std::vector<WindowRange> ranges;
    {
        std::lock_guard lock(mutex_);
        ranges = table_.writable_ranges(owner);
    }
    // msync waits for I/O, so it runs unlocked; a range remapped meanwhile is still reserved
    // memory, and msync of whatever is there now is harmless. Every range is tried even after
    // one fails, so one bad file does not keep the others' data back.
    std::expected<void, int> result;
    for (const WindowRange& r : ranges) {
        if (auto ok = region_.sync(r.offset, r.length); !ok && result) result = ok;
    }
    return result;
}

std::expected<void, int> DaxMapper::repair(uint64_t window_offset) {
    if (window_offset >= region_.size()) return std::unexpected(EINVAL);
    std::lock_guard lock(mutex_);
    const Mapping* m = table_.find(window_offset);
    if (m == nullptr) return std::unexpected(ENOENT);
    if (m->dead) return {};
    if (auto ok = region_.discard(m->offset, m->length); !ok) return ok;
    (void)table_.kill(m->offset, m->length);
    ++repairs_;
    return {};
}

std::expected<std::size_t, int> DaxMapper::repair_truncated(TruncationScope scope) {
    std::lock_guard lock(mutex_);
    auto ranges = ranges_past_end(true);
    if (ranges && ranges->empty() && scope == TruncationScope::CutOrAnyPastEnd) {
        ranges = ranges_past_end(false);
    }
    if (!ranges) return std::unexpected(ranges.error());
    for (const WindowRange& r : *ranges) {
        if (auto ok = region_.discard(r.offset, r.length); !ok) return std::unexpected(ok.error());
        // Each range ends where its extent ends, so the split needs no extra extent.
        (void)table_.kill(r.offset, r.length);
        ++repairs_;
    }
    return ranges->size();
}

std::expected<std::vector<WindowRange>, int> DaxMapper::ranges_past_end(
    bool cut_since_mapped) const {
    std::vector<WindowRange> ranges;
    for (const Mapping& m : table_.snapshot()) {
        uint64_t at = m.offset;
        for (const MappedExtent& e : m.extents) {
            // The part to look at: where a fault means the file shrank since it was mapped, or
            // the whole extent.
            uint64_t length = e.length;
            if (cut_since_mapped) {
                const uint64_t end = e.file_end_when_mapped;
                length = end > e.file_offset ? std::min(e.length, end - e.file_offset) : 0;
            }
            const std::byte* host = region_.host() + at;
            if (length > 0) {
                auto intact = readable(host + length - page_size());
                if (!intact) return std::unexpected(intact.error());
                if (!*intact) {
                    auto cut = first_unreadable(host, length);
                    if (!cut) return std::unexpected(cut.error());
                    ranges.push_back({at + *cut, e.length - *cut});
                }
            }
            at += e.length;
        }
    }
    return ranges;
}

std::expected<void, int> DaxMapper::reset() {
    std::lock_guard lock(mutex_);
    table_.clear();
    return region_.discard(0, region_.size());
}

DaxStats DaxMapper::stats() const {
    std::lock_guard lock(mutex_);
    return DaxStats{table_.live_mappings(),
                    table_.dead_mappings(),
                    table_.extents(),
                    table_.bytes_mapped(),
                    setups_,
                    removals_,
                    repairs_,
                    faulted_pages_.load(std::memory_order_relaxed)};
}

}  // namespace vfsdax::fs
