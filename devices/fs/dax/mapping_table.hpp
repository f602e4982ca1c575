// SPDX-License-Identifier: Apache-2.0
// MappingTable: which window ranges map which file extents, and the DAX overlap rules. No syscalls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace vfsdax::fs {

// A file the mapper holds open for as long as a mapped extent refers to it, so it can map the
// file back over a range it had to shadow (see MappedExtent::shadowed_from). The table never
// looks inside: the mapper makes these, with a deleter that closes the descriptor.
using HeldFile = std::shared_ptr<const int>;

// A piece of file behind part of a mapping.
struct MappedExtent {
    static constexpr uint64_t kNotShadowed = ~uint64_t{0};

    uint64_t file_offset = 0;
    uint64_t length = 0;
    // Where the file ended (page-rounded) when this was mapped, or when the mapper last mapped
    // it back: the part below could be read then, so a fault there now means the file shrank
    // under the guest. 0: unknown.
    uint64_t file_end_when_mapped = 0;
    // From this byte of the extent on, the window holds anonymous memory instead of the file:
    // the file ended before it, and an access there would have faulted. The extent still
    // belongs to the file; the mapper maps the file back as soon as the file covers the range
    // again. kNotShadowed: the whole extent maps the file.
    uint64_t shadowed_from = kNotShadowed;
    HeldFile file{};

    // The bytes from the extent's start that map the file.
    uint64_t file_backed() const { return shadowed_from < length ? shadowed_from : length; }
    bool shadowed() const { return shadowed_from < length; }
    bool operator==(const MappedExtent&) const = default;
};

// [offset, offset + length) of the window.
struct WindowRange {
    uint64_t offset = 0;
    uint64_t length = 0;

    bool operator==(const WindowRange&) const = default;
};

// One mapping: `extents` lie back to back from `offset` and add up to `length`. A dead mapping
// lost its file (the guest stored into it while it was read-only) and is anonymous memory now,
// so it has no extents; it stays in the table so the guest's later REMOVEMAPPING still finds it.
struct Mapping {
    uint64_t offset = 0;
    uint64_t length = 0;
    uint64_t owner = 0;
    bool writable = false;
    bool dead = false;
    std::vector<MappedExtent> extents;
};

// The FUSE DAX rules for the window's mapping table:
// - insert: a mapping that exactly covers an old one replaces it (that is also how a read-only
//   mapping is upgraded to read-write); one that covers part of an old mapping cuts that part
//   out, leaving one or two pieces of it.
// - remove: takes any range out, splitting mappings it cuts through; unmapped parts are fine.
// - offsets and lengths must be multiples of `alignment` and lie inside the window: any value,
//   including ones whose sums overflow, is checked before anything changes (EINVAL).
// - the number of extents is bounded (each one costs the host a mapping); an operation that
//   would exceed the bound fails with ENOSPC and changes nothing.
// Every failing operation leaves the table as it was. Errors are positive errno values.
class MappingTable {
public:
    struct Limits {
        uint64_t window_size = 0;
        uint64_t alignment = 4096;  // a power of two
        std::size_t max_extents = 0;
    };

    explicit MappingTable(const Limits& limits) : limits_(limits) {}

    std::expected<void, int> insert(uint64_t offset, std::span<const MappedExtent> extents,
                                    bool writable, uint64_t owner);
    std::expected<void, int> remove(uint64_t offset, uint64_t length);
    // Drops every mapping.
    void clear();

    // The mapping holding window byte `offset`, if any.
    const Mapping* find(uint64_t offset) const;
    // Whether any mapping overlaps [offset, offset + length); a range running past the end of
    // the address space is taken to end there.
    bool occupied(uint64_t offset, uint64_t length) const;
    // Marks [offset, offset + length) dead: mappings it cuts through split at its edges as in
    // remove(), and the part inside stays as a dead mapping. EINVAL for a bad range; ENOSPC if
    // the split needs more extents than the limit allows (never when the range is a whole
    // mapping).
    std::expected<void, int> kill(uint64_t offset, uint64_t length);
    // The live, writable mappings of `owner` (of every owner if none is given): what the guest
    // may have dirtied through the window.
    std::vector<WindowRange> writable_ranges(std::optional<uint64_t> owner) const;

    // Calls f(window_offset, extent, mapping) for each extent of the live mappings of `owner`
    // (of every owner if none is given), in window order. f may change the extent's
    // shadowed_from and file_end_when_mapped, nothing else.
    template <typename F>
    void for_each_extent(std::optional<uint64_t> owner, F&& f) {
        for (auto& [offset, m] : mappings_) {
            if (m.dead || (owner && m.owner != *owner)) continue;
            uint64_t at = offset;
            for (MappedExtent& e : m.extents) {
                const bool was = e.shadowed();
                f(at, e, static_cast<const Mapping&>(m));
                if (e.shadowed() != was) shadowed_count_ += e.shadowed() ? 1 : -1;
                at += e.length;
            }
        }
    }

    std::vector<Mapping> snapshot() const;
    std::size_t live_mappings() const;
    std::size_t dead_mappings() const { return mappings_.size() - live_mappings(); }
    std::size_t extents() const { return extent_count_; }
    // Extents whose window range is partly or wholly shadowed.
    std::size_t shadowed_extents() const { return static_cast<std::size_t>(shadowed_count_); }
    uint64_t bytes_mapped() const;
    const Limits& limits() const { return limits_; }

private:
    bool aligned(uint64_t value) const { return (value & (limits_.alignment - 1)) == 0; }
    std::expected<void, int> check_range(uint64_t offset, uint64_t length) const;
    // Mappings overlapping [offset, end), and what is left of them once that range is cut out.
    struct Cut {
        std::vector<uint64_t> removed;  // keys of overlapped mappings
        std::vector<Mapping> remnants;
        std::ptrdiff_t extent_delta = 0;
        std::ptrdiff_t shadowed_delta = 0;
    };
    Cut plan_cut(uint64_t offset, uint64_t end) const;
    // Applies `cut` and counts `extra_extents` more (the caller's new mapping), or fails with
    // ENOSPC and changes nothing.
    std::expected<void, int> apply(const Cut& cut, std::ptrdiff_t extra_extents);

    Limits limits_;
    std::map<uint64_t, Mapping> mappings_;  // by window offset; never overlapping
    std::size_t extent_count_ = 0;
    std::ptrdiff_t shadowed_count_ = 0;
};

}  // namespace vfsdax::fs
