// SPDX-License-Identifier: Apache-2.0
// MappingTable: validation, overlap cutting and extent bookkeeping for the DAX window.
#include "dax/mapping_table.hpp"

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <limits>

namespace vfsdax::fs {

namespace {

// mmap takes a signed file offset, so no mapped file range may reach past it.
constexpr uint64_t kMaxFileOffset = std::numeric_limits<int64_t>::max();

// The part [from, to) of `m` (which must lie inside it), with its extents cut to match.
Mapping slice(const Mapping& m, uint64_t from, uint64_t to) {
    Mapping piece{from, to - from, m.owner, m.writable, m.dead, {}};
    uint64_t start = m.offset;
    for (const MappedExtent& e : m.extents) {
        const uint64_t end = start + e.length;
        const uint64_t lo = std::max(from, start);
        const uint64_t hi = std::min(to, end);
        if (lo < hi) {
            // The shadow, counted from the piece's start: whatever of it falls inside.
            uint64_t shadowed_from = MappedExtent::kNotShadowed;
            if (e.shadowed() && e.shadowed_from < hi - start) {
                shadowed_from = e.shadowed_from > lo - start ? e.shadowed_from - (lo - start) : 0;
            }
            piece.extents.push_back({e.file_offset + (lo - start), hi - lo, e.file_end_when_mapped,
                                     shadowed_from, e.file});
        }
        start = end;
    }
    return piece;
}

std::ptrdiff_t shadowed_in(std::span<const MappedExtent> extents) {
    return std::count_if(extents.begin(), extents.end(),
                         [](const MappedExtent& e) { return e.shadowed(); });
}

}  // namespace

std::expected<void, int> MappingTable::check_range(uint64_t offset, uint64_t length) const {
    if (length == 0 || !aligned(offset) || !aligned(length)) return std::unexpected(EINVAL);
    if (offset > limits_.window_size || length > limits_.window_size - offset) {
        return std::unexpected(EINVAL);
    }
    return {};
}

MappingTable::Cut MappingTable::plan_cut(uint64_t offset, uint64_t end) const {
    Cut cut;
    auto it = mappings_.upper_bound(offset);
    if (it != mappings_.begin()) {
        const auto before = std::prev(it);
        if (before->second.offset + before->second.length > offset) it = before;
    }
    for (; it != mappings_.end() && it->first < end; ++it) {
        const Mapping& m = it->second;
        const uint64_t m_end = m.offset + m.length;
        cut.removed.push_back(it->first);
        cut.extent_delta -= static_cast<std::ptrdiff_t>(m.extents.size());
        cut.shadowed_delta -= shadowed_in(m.extents);
        if (m.offset < offset) cut.remnants.push_back(slice(m, m.offset, offset));
        if (m_end > end) cut.remnants.push_back(slice(m, end, m_end));
    }
    for (const Mapping& r : cut.remnants) {
        cut.extent_delta += static_cast<std::ptrdiff_t>(r.extents.size());
        cut.shadowed_delta += shadowed_in(r.extents);
    }
    return cut;
}

std::expected<void, int> MappingTable::apply(const Cut& cut, std::ptrdiff_t extra_extents) {
    const auto count =
        static_cast<std::ptrdiff_t>(extent_count_) + cut.extent_delta + extra_extents;
    if (count > static_cast<std::ptrdiff_t>(limits_.max_extents)) return std::unexpected(ENOSPC);
    for (uint64_t key : cut.removed) mappings_.erase(key);
    for (const Mapping& r : cut.remnants) mappings_.emplace(r.offset, r);
    extent_count_ = static_cast<std::size_t>(count);
    shadowed_count_ += cut.shadowed_delta;
    return {};
}

std::expected<void, int> MappingTable::insert(uint64_t offset,
                                              std::span<const MappedExtent> extents, bool writable,
                                              uint64_t owner) {
    if (extents.empty()) return std::unexpected(EINVAL);
    uint64_t total = 0;
    for (const MappedExtent& e : extents) {
        if (e.length == 0 || !aligned(e.length) || !aligned(e.file_offset) ||
            e.file_offset > kMaxFileOffset || e.length > kMaxFileOffset - e.file_offset ||
            __builtin_add_overflow(total, e.length, &total)) {
            return std::unexpected(EINVAL);
        }
    }
    if (auto ok = check_range(offset, total); !ok) return ok;
    const Cut cut = plan_cut(offset, offset + total);
    if (auto ok = apply(cut, static_cast<std::ptrdiff_t>(extents.size())); !ok) return ok;
    shadowed_count_ += shadowed_in(extents);
    mappings_.emplace(offset, Mapping{offset, total, owner, writable, false,
                                      std::vector<MappedExtent>(extents.begin(), extents.end())});
    return {};
}

std::expected<void, int> MappingTable::remove(uint64_t offset, uint64_t length) {
    if (auto ok = check_range(offset, length); !ok) return ok;
    return apply(plan_cut(offset, offset + length), 0);
}

void MappingTable::clear() {
    mappings_.clear();
    extent_count_ = 0;
    shadowed_count_ = 0;
}

const Mapping* MappingTable::find(uint64_t offset) const {
    auto it = mappings_.upper_bound(offset);
    if (it == mappings_.begin()) return nullptr;
    const Mapping& m = std::prev(it)->second;
    return offset - m.offset < m.length ? &m : nullptr;
}

bool MappingTable::occupied(uint64_t offset, uint64_t length) const {
    uint64_t end;
    if (__builtin_add_overflow(offset, length, &end)) end = ~uint64_t{0};
    if (find(offset) != nullptr) return true;
    const auto next = mappings_.upper_bound(offset);
    return next != mappings_.end() && next->first < end;
}

std::expected<void, int> MappingTable::kill(uint64_t offset, uint64_t length) {
    if (auto ok = check_range(offset, length); !ok) return ok;
    const uint64_t end = offset + length;
    Cut cut = plan_cut(offset, end);
    for (uint64_t key : cut.removed) {
        const Mapping& m = mappings_.at(key);
        const uint64_t from = std::max(m.offset, offset);
        const uint64_t to = std::min(m.offset + m.length, end);
        cut.remnants.push_back(Mapping{from, to - from, m.owner, m.writable, true, {}});
    }
    return apply(cut, 0);
}

std::vector<WindowRange> MappingTable::writable_ranges(std::optional<uint64_t> owner) const {
    std::vector<WindowRange> ranges;
    for (const auto& [offset, m] : mappings_) {
        if ((!owner || m.owner == *owner) && m.writable && !m.dead) {
            ranges.push_back({offset, m.length});
        }
    }
    return ranges;
}

std::vector<Mapping> MappingTable::snapshot() const {
    std::vector<Mapping> all;
    all.reserve(mappings_.size());
    for (const auto& entry : mappings_) all.push_back(entry.second);
    return all;
}

std::size_t MappingTable::live_mappings() const {
    return static_cast<std::size_t>(std::count_if(
        mappings_.begin(), mappings_.end(), [](const auto& entry) { return !entry.second.dead; }));
}

uint64_t MappingTable::bytes_mapped() const {
    uint64_t bytes = 0;
    for (const auto& [offset, m] : mappings_) {
        if (!m.dead) bytes += m.length;
    }
    return bytes;
}

}  // namespace vfsdax::fs
