// DaxMapper: the mapping table and the host window kept in step under one lock.
#include "vfsdax/fs/dax_mapper.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

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

}  // namespace

std::expected<std::unique_ptr<DaxMapper>, int> DaxMapper::create(const Config& config) {
    if (config.window_size == 0 || config.window_size % kWindowUnit != 0 ||
        config.max_extents == 0) {
        return std::unexpected(EINVAL);
    }
    auto region = SharedMemoryRegion::reserve(config.window_size);
    if (!region) return std::unexpected(region.error());
    const MappingTable::Limits limits{config.window_size, page_size(), config.max_extents};
    return std::unique_ptr<DaxMapper>(new DaxMapper(std::move(*region), limits));
}

uint32_t DaxMapper::map_alignment() const {
    return static_cast<uint32_t>(__builtin_ctzll(page_size()));
}

std::expected<void, int> DaxMapper::map(uint64_t window_offset, std::span<const FileExtent> extents,
                                        bool writable, uint64_t owner) {
    std::vector<MappedExtent> pieces;
    pieces.reserve(extents.size());
    uint64_t total = 0;
    for (const FileExtent& e : extents) {
        pieces.push_back({e.offset, e.length});
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
    (void)table_.kill(window_offset);
    ++repairs_;
    return {};
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
                    repairs_};
}

}  // namespace vfsdax::fs
