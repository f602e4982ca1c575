// SPDX-License-Identifier: Apache-2.0
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
#include "dax/mapping_table.hpp"

namespace vfsdax::fs {

namespace {

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
std::expected<uint64_t, int> first_unreadable(const std::byte* at, uint64_t length, uint64_t page) {
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

// A descriptor the mapper keeps for an extent: the same open file, closed with the last
// extent that refers to it.
std::expected<HeldFile, int> hold(int fd) {
    const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return std::unexpected(errno);
    return HeldFile(new int(copy), [](const int* held) {
        ::close(*held);
        delete held;
    });
}

}  // namespace

std::expected<std::unique_ptr<DaxMapper>, int> DaxMapper::create(const Config& config) {
    if (config.window_size == 0 || config.window_size % kWindowUnit != 0 ||
        config.max_extents == 0) {
        return std::unexpected(EINVAL);
    }
    auto region = SharedMemoryRegion::reserve(config.window_size);
    if (!region) return std::unexpected(region.error());
    const MappingTable::Limits limits{config.window_size, region->page_size(), config.max_extents};
    std::unique_ptr<DaxMapper> mapper(
        new DaxMapper(std::move(*region), std::make_unique<MappingTable>(limits)));
    if (!watch_for_faults(mapper.get())) return std::unexpected(EMFILE);
    return mapper;
}

DaxMapper::DaxMapper(SharedMemoryRegion region, std::unique_ptr<MappingTable> table)
    : region_(std::move(region)),
      table_(std::move(table)),
      faulted_bits_(new std::atomic<uint64_t>[(region_.size() / region_.page_size() + 63) / 64]()) {
}

DaxMapper::~DaxMapper() {
    unwatch_for_faults(this);
}

bool DaxMapper::zero_faulting_page(const void* address) noexcept {
    const auto at = reinterpret_cast<uintptr_t>(address);
    const auto start = reinterpret_cast<uintptr_t>(region_.host());
    if (at < start || at - start >= region_.size()) return false;
    const uint64_t page = region_.page_size();
    const uint64_t index = (at - start) / page;
    if (!region_.discard(index * page, page)) return false;
    faulted_bits_[index / 64].fetch_or(uint64_t{1} << (index % 64), std::memory_order_relaxed);
    faults_pending_.store(true, std::memory_order_release);
    faulted_pages_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

uint32_t DaxMapper::map_alignment() const {
    return static_cast<uint32_t>(__builtin_ctzll(region_.page_size()));
}

std::expected<void, int> DaxMapper::map(uint64_t window_offset, std::span<const FileExtent> extents,
                                        bool writable, uint64_t owner) {
    std::vector<MappedExtent> pieces;
    pieces.reserve(extents.size());
    uint64_t total = 0;
    const uint64_t page = region_.page_size();
    for (const FileExtent& e : extents) {
        struct stat st;
        if (fstat(e.fd, &st) != 0) return std::unexpected(EBADF);
        auto held = hold(e.fd);
        if (!held) return std::unexpected(held.error());
        const auto size = static_cast<uint64_t>(st.st_size);
        pieces.push_back({e.offset, e.length, (size + page - 1) / page * page,
                          MappedExtent::kNotShadowed, std::move(*held)});
        if (__builtin_add_overflow(total, e.length, &total)) total = ~uint64_t{0};
    }
    std::lock_guard lock(mutex_);
    // Only a request over existing mappings has anything to lose if mmap refuses it midway;
    // into a free range (the common case) the extra syscall per extent is saved.
    if (table_->occupied(window_offset, total)) {
        for (const FileExtent& e : extents) {
            if (auto ok = check_access(e.fd, writable); !ok) return ok;
        }
    }
    if (auto ok = table_->insert(window_offset, pieces, writable, owner); !ok) return ok;
    uint64_t at = window_offset;
    for (const FileExtent& e : extents) {
        if (auto ok = region_.map(at, e.length, e.fd, e.offset, writable); !ok) {
            // The table accepted the range, so `total` is its exact length; leave it all
            // unmapped rather than half of a mapping the guest was told failed.
            (void)region_.discard(window_offset, total);
            (void)table_->remove(window_offset, total);
            return ok;
        }
        at += e.length;
    }
    ++setups_;
    return {};
}

std::expected<void, int> DaxMapper::unmap(uint64_t window_offset, uint64_t length) {
    std::lock_guard lock(mutex_);
    if (auto ok = table_->remove(window_offset, length); !ok) return ok;
    if (auto ok = region_.discard(window_offset, length); !ok) return ok;
    ++removals_;
    return {};
}

std::expected<void, int> DaxMapper::follow_file_size(uint64_t owner) {
    std::lock_guard lock(mutex_);
    if (auto ok = absorb_faulted_pages(); !ok) return ok;
    if (table_->shadowed_extents() == 0) return {};
    return restore_covered(owner);
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
        ranges = table_->writable_ranges(owner);
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

std::expected<void, int> DaxMapper::shadow(uint64_t at, MappedExtent& e, uint64_t from) {
    const uint64_t end = e.file_backed();
    if (from >= end) return {};
    if (auto ok = region_.discard(at + from, end - from); !ok) return ok;
    e.shadowed_from = from;
    ++repairs_;
    return {};
}

std::expected<void, int> DaxMapper::restore(uint64_t at, MappedExtent& e, bool writable) {
    if (!e.shadowed() || !e.file) return {};
    struct stat st;
    if (fstat(*e.file, &st) != 0) return std::unexpected(errno);
    // Only a regular file says by its size how far it can be mapped.
    if (!S_ISREG(st.st_mode)) return {};
    const uint64_t page = region_.page_size();
    const uint64_t end = (static_cast<uint64_t>(st.st_size) + page - 1) / page * page;
    const uint64_t covered = end > e.file_offset ? std::min(e.length, end - e.file_offset) : 0;
    const uint64_t from = e.shadowed_from;
    if (covered <= from) return {};
    if (auto ok = region_.map(at + from, covered - from, *e.file, e.file_offset + from, writable);
        !ok) {
        return ok;
    }
    e.shadowed_from = covered == e.length ? MappedExtent::kNotShadowed : covered;
    e.file_end_when_mapped = std::max(e.file_end_when_mapped, end);
    ++restores_;
    return {};
}

std::expected<void, int> DaxMapper::restore_covered(std::optional<uint64_t> owner) {
    std::expected<void, int> result;
    table_->for_each_extent(owner, [&](uint64_t at, MappedExtent& e, const Mapping& m) {
        if (auto ok = restore(at, e, m.writable); !ok && result) result = ok;
    });
    return result;
}

std::expected<void, int> DaxMapper::absorb_faulted_pages() {
    if (!faults_pending_.exchange(false, std::memory_order_acquire)) return {};
    const uint64_t page = region_.page_size();
    const uint64_t words = (region_.size() / page + 63) / 64;
    std::expected<void, int> result;
    for (uint64_t w = 0; w < words; ++w) {
        for (uint64_t bits = faulted_bits_[w].exchange(0, std::memory_order_relaxed); bits != 0;
             bits &= bits - 1) {
            const uint64_t offset = (w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits))) * page;
            const Mapping* m = table_->find(offset);
            if (m == nullptr) continue;  // anonymous memory, or the guest removed it since
            table_->for_each_extent(m->owner, [&](uint64_t at, MappedExtent& e, const Mapping& in) {
                if (offset < at || offset - at >= e.length) return;
                auto ok = shadow(at, e, offset - at);
                if (ok) ok = restore(at, e, in.writable);
                if (!ok && result) result = ok;
            });
        }
    }
    return result;
}

std::expected<void, int> DaxMapper::repair(uint64_t window_offset) {
    if (window_offset >= region_.size()) return std::unexpected(EINVAL);
    std::lock_guard lock(mutex_);
    if (auto ok = absorb_faulted_pages(); !ok) return ok;
    const Mapping* m = table_->find(window_offset);
    if (m == nullptr) return std::unexpected(ENOENT);
    if (m->dead) return {};
    const uint64_t page = region_.page_size();
    const uint64_t fault_page = window_offset / page * page;
    // Past the end (or shadowed already): handled, with `error` 0 or an errno. Otherwise the
    // file covers the page, and the fault was a store into a read-only mapping.
    bool handled = false;
    int error = 0;
    table_->for_each_extent(m->owner, [&](uint64_t at, MappedExtent& e, const Mapping&) {
        if (fault_page < at || fault_page - at >= e.length) return;
        const uint64_t in_extent = fault_page - at;
        if (in_extent >= e.file_backed()) {
            handled = true;
            return;
        }
        auto intact = readable(region_.host() + fault_page);
        if (!intact) {
            handled = true;
            error = intact.error();
        } else if (!*intact) {
            handled = true;
            auto cut = first_unreadable(region_.host() + at, in_extent + page, page);
            auto ok = cut ? shadow(at, e, *cut) : std::unexpected(cut.error());
            if (!ok) error = ok.error();
        }
    });
    if (handled) return error == 0 ? std::expected<void, int>{} : std::unexpected(error);
    const uint64_t offset = m->offset, length = m->length;
    if (auto ok = region_.discard(offset, length); !ok) return ok;
    (void)table_->kill(offset, length);
    ++repairs_;
    return {};
}

std::expected<std::size_t, int> DaxMapper::repair_truncated(TruncationScope scope) {
    std::lock_guard lock(mutex_);
    if (auto ok = absorb_faulted_pages(); !ok) return std::unexpected(ok.error());
    auto shadowed = shadow_past_end(true);
    if (shadowed && *shadowed == 0 && scope == TruncationScope::CutOrAnyPastEnd) {
        shadowed = shadow_past_end(false);
    }
    if (!shadowed) return shadowed;
    if (auto ok = restore_covered(std::nullopt); !ok) return std::unexpected(ok.error());
    return shadowed;
}

std::expected<std::size_t, int> DaxMapper::shadow_past_end(bool cut_since_mapped) {
    std::size_t count = 0;
    std::expected<void, int> result;
    table_->for_each_extent(std::nullopt, [&](uint64_t at, MappedExtent& e, const Mapping&) {
        if (!result) return;
        // The part to look at: where a fault means the file shrank since it was mapped, or
        // all that still maps the file.
        uint64_t length = e.file_backed();
        if (cut_since_mapped) {
            const uint64_t end = e.file_end_when_mapped;
            length = end > e.file_offset ? std::min(length, end - e.file_offset) : 0;
        }
        if (length == 0) return;
        const std::byte* host = region_.host() + at;
        auto intact = readable(host + length - region_.page_size());
        if (!intact) {
            result = std::unexpected(intact.error());
        } else if (!*intact) {
            auto cut = first_unreadable(host, length, region_.page_size());
            result = cut ? shadow(at, e, *cut) : std::unexpected(cut.error());
            if (result) ++count;
        }
    });
    if (!result) return std::unexpected(result.error());
    return count;
}

std::expected<void, int> DaxMapper::reset() {
    std::lock_guard lock(mutex_);
    table_->clear();
    // The faulted pages lay in mappings that are gone now.
    (void)absorb_faulted_pages();
    return region_.discard(0, region_.size());
}

DaxStats DaxMapper::stats() const {
    std::lock_guard lock(mutex_);
    return DaxStats{table_->live_mappings(),
                    table_->dead_mappings(),
                    table_->extents(),
                    table_->shadowed_extents(),
                    table_->bytes_mapped(),
                    setups_,
                    removals_,
                    repairs_,
                    restores_,
                    faulted_pages_.load(std::memory_order_relaxed)};
}

}  // namespace vfsdax::fs
