// SPDX-License-Identifier: Apache-2.0
// PackedDriver: ring layout, buffer ids, wrap counters and event suppression from virtio 1.2, 2.8.
#include "packed/packed_driver.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace vfsdax::test {

namespace {

constexpr unsigned kFeatureIndirectDesc = 28;  // VIRTIO_F_INDIRECT_DESC
constexpr unsigned kFeatureEventIdx = 29;      // VIRTIO_F_EVENT_IDX
constexpr unsigned kFeatureRingPacked = 34;    // VIRTIO_F_RING_PACKED
constexpr uint64_t kDescSize = 16;
constexpr uint64_t kFlagsOffset = 14;  // pvirtq_desc: addr 0, len 8, id 12, flags 14
static_assert(sizeof(PackedDesc) == kDescSize && sizeof(PackedEventSuppress) == 4);

// The guest side of the tests runs on little-endian hosts only (x86-64, arm64), like Linux's
// le16_to_cpu there: plain host-order accesses are the wire format.
uint16_t load16(const std::byte* p, int order = __ATOMIC_RELAXED) {
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), order);
}
void store16(std::byte* p, uint16_t v, int order = __ATOMIC_RELAXED) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, order);
}

// A used descriptor has AVAIL == USED == the driver's used wrap counter (2.8.1).
bool is_used(uint16_t flags, bool wrap) {
    const bool avail = flags & PackedDriver::kDescF_Avail;
    const bool used = flags & PackedDriver::kDescF_Used;
    return avail == used && used == wrap;
}

}  // namespace

PackedDriver::PackedDriver(TestMemory& memory, uint16_t size, uint64_t features)
    : PackedDriver(
          memory, size, features,
          Layout{memory.alloc(kDescSize * size, 16), memory.alloc(4, 4), memory.alloc(4, 4)}) {}

PackedDriver::PackedDriver(TestMemory& memory, uint16_t size, uint64_t features, Layout layout)
    : memory_(memory),
      size_(size),
      features_(features),
      layout_(layout),
      buffers_(size),
      tables_(size),
      num_free_(size) {
    if (size == 0 || size > 32768)
        throw std::invalid_argument("PackedDriver: queue size out of 1..32768");
    // Areas outside TestMemory are allowed (activation tests); the driver never touches them.
    const auto area = [&](GuestAddress addr, uint64_t len) -> std::byte* {
        try {
            return memory_.raw(addr, len);
        } catch (const std::runtime_error&) {
            return nullptr;
        }
    };
    ring_ = area(layout.desc, kDescSize * size);
    driver_area_ = area(layout.driver, 4);
    device_area_ = area(layout.device, 4);
    free_ids_.reserve(size);
    for (uint32_t id = size; id-- > 0;) free_ids_.push_back(static_cast<uint16_t>(id));
    pending_.reserve(size);
    // TestMemory starts zeroed: "the descriptor ring is zero-initialized" (2.8.5), and both
    // event areas read ENABLE.
}

bool PackedDriver::event_idx() const {
    return (features_ >> kFeatureEventIdx) & 1;
}
bool PackedDriver::indirect() const {
    return (features_ >> kFeatureIndirectDesc) & 1;
}
uint64_t PackedDriver::features() const {
    return features_ | uint64_t{1} << kFeatureRingPacked;
}

virtio::QueueConfig PackedDriver::config(uint16_t max_size) const {
    virtio::QueueConfig c;
    c.max_size = max_size;
    c.size = size_;
    c.ready = true;
    c.desc = layout_.desc;
    c.driver = layout_.driver;
    c.device = layout_.device;
    return c;
}

DriverBuffer PackedDriver::alloc_buffer(uint32_t len, uint64_t align) {
    return DriverBuffer{memory_.alloc(len, align), len};
}

void PackedDriver::advance_avail() {
    if (++next_avail_ == size_) {
        next_avail_ = 0;
        avail_wrap_ = !avail_wrap_;
    }
}

void PackedDriver::write_desc(uint16_t slot, const PackedDesc& d, bool hold_flags) {
    if (!ring_) throw std::logic_error("PackedDriver: descriptor ring outside guest RAM");
    std::byte* p = ring_ + kDescSize * slot;
    std::memcpy(p, &d.addr, 8);
    std::memcpy(p + 8, &d.len, 4);
    std::memcpy(p + 12, &d.id, 2);
    if (hold_flags) {
        pending_.push_back({slot, d.flags});
    } else {
        store16(p + kFlagsOffset, d.flags);
    }
}

uint16_t PackedDriver::take_id(uint16_t slots, uint64_t writable) {
    const uint16_t id = free_ids_.back();
    free_ids_.pop_back();
    buffers_[id] = {slots, writable};
    num_free_ = static_cast<uint16_t>(num_free_ - slots);
    return id;
}

std::optional<uint16_t> PackedDriver::add(std::span<const DriverBuffer> readable,
                                          std::span<const DriverBuffer> writable) {
    const std::size_t n = readable.size() + writable.size();
    if (n == 0) throw std::invalid_argument("PackedDriver: a buffer needs an element");
    // 2.8.18: the whole list must fit in the ring before its first descriptor is made available.
    if (n > num_free_ || free_ids_.empty()) return std::nullopt;
    uint64_t writable_bytes = 0;
    for (const auto& b : writable) writable_bytes += b.len;
    const uint16_t id = take_id(static_cast<uint16_t>(n), writable_bytes);
    // The id belongs in the last descriptor (2.8.6); the others carry ~id, so a device that
    // reads it from the wrong one is caught.
    const auto id_at = [&](std::size_t k) { return static_cast<uint16_t>(k + 1 == n ? id : ~id); };
    std::size_t k = 0;
    for (const auto& b : readable) {
        const uint16_t flags = avail_bits() | (k + 1 < n ? kDescF_Next : 0);
        write_desc(next_avail_, {b.addr.raw(), b.len, id_at(k), flags}, k == 0);
        advance_avail();
        ++k;
    }
    for (const auto& b : writable) {
        const uint16_t flags = avail_bits() | kDescF_Write | (k + 1 < n ? kDescF_Next : 0);
        write_desc(next_avail_, {b.addr.raw(), b.len, id_at(k), flags}, k == 0);
        advance_avail();
        ++k;
    }
    return id;
}

std::optional<uint16_t> PackedDriver::add_indirect(std::span<const DriverBuffer> readable,
                                                   std::span<const DriverBuffer> writable) {
    if (!indirect()) throw std::logic_error("PackedDriver: INDIRECT_DESC not negotiated");
    const std::size_t n = readable.size() + writable.size();
    if (n == 0) throw std::invalid_argument("PackedDriver: a buffer needs an element");
    if (num_free_ == 0 || free_ids_.empty()) return std::nullopt;
    uint64_t writable_bytes = 0;
    for (const auto& b : writable) writable_bytes += b.len;
    const uint16_t id = take_id(1, writable_bytes);
    // One table per id, reused while large enough (TestMemory never frees).
    Table& t = tables_[id];
    if (t.capacity < n) {
        t.capacity = static_cast<uint32_t>(std::max<std::size_t>(n, 8));
        t.addr = memory_.alloc(kDescSize * t.capacity, 16);
    }
    // Inside the table only WRITE is valid (2.8.7); the list is implicit in the table length.
    std::byte* table = memory_.raw(t.addr, kDescSize * n);
    std::size_t k = 0;
    const auto put = [&](const DriverBuffer& b, uint16_t flags) {
        const PackedDesc d{b.addr.raw(), b.len, static_cast<uint16_t>(~id), flags};
        std::memcpy(table + kDescSize * k++, &d, sizeof d);
    };
    for (const auto& b : readable) put(b, 0);
    for (const auto& b : writable) put(b, kDescF_Write);
    const PackedDesc pointer{t.addr.raw(), static_cast<uint32_t>(kDescSize * n), id,
                             static_cast<uint16_t>(avail_bits() | kDescF_Indirect)};
    write_desc(next_avail_, pointer, true);
    advance_avail();
    return id;
}

void PackedDriver::publish() {
    // 2.8.21.1: everything before the flags; the earliest head last, so the device never sees
    // a later buffer before an earlier one.
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
        store16(ring_ + kDescSize * it->slot + kFlagsOffset, it->flags, __ATOMIC_RELEASE);
    }
    pending_.clear();
    const uint32_t end = next_avail_ + (avail_wrap_ == published_wrap_ ? 0u : size_);
    published_since_kick_ += end - published_avail_;
    published_avail_ = next_avail_;
    published_wrap_ = avail_wrap_;
}

bool PackedDriver::kick_needed() {
    // 2.8.21.3.1: the flags must be visible before the device's area is read.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint32_t added = published_since_kick_;
    published_since_kick_ = 0;
    const PackedEventSuppress ev = device_event();
    if (ev.flags != kEventDesc) return ev.flags != kEventDisable;
    // Linux's rule: the event slot, moved a lap back when its wrap counter is the previous one,
    // lies among the `added` slots just before the published position.
    uint16_t event = ev.off_wrap & ~kEventWrap;
    if (bool(ev.off_wrap & kEventWrap) != published_wrap_)
        event = static_cast<uint16_t>(event - size_);
    const uint16_t now = published_avail_;
    const uint16_t old = static_cast<uint16_t>(now - added);
    return static_cast<uint16_t>(now - event - 1) < static_cast<uint16_t>(now - old);
}

bool PackedDriver::has_used() const {
    return is_used(load16(ring_ + kDescSize * last_used_ + kFlagsOffset, __ATOMIC_ACQUIRE),
                   used_wrap_);
}

std::optional<PackedUsedElem> PackedDriver::get_used() {
    std::byte* p = ring_ + kDescSize * last_used_;
    const uint16_t flags = load16(p + kFlagsOffset, __ATOMIC_ACQUIRE);
    if (!is_used(flags, used_wrap_)) return std::nullopt;
    PackedUsedElem e;
    std::memcpy(&e.id, p + 12, 2);
    std::memcpy(&e.len, p + 8, 4);
    e.written = flags & kDescF_Write;
    if (e.id >= size_ || buffers_[e.id].slots == 0) {
        throw DeviceBug("PackedDriver: used id " + std::to_string(e.id) + " is not in flight");
    }
    BufferState& b = buffers_[e.id];
    if (e.written && e.len > b.writable) {
        throw DeviceBug("PackedDriver: used len " + std::to_string(e.len) +
                        " beyond the writable " + std::to_string(b.writable) + " bytes");
    }
    // The device wrote one used element for the whole list and skipped its other slots (2.8.6).
    uint32_t next = last_used_ + b.slots;
    if (next >= size_) {
        next -= size_;
        used_wrap_ = !used_wrap_;
    }
    last_used_ = static_cast<uint16_t>(next);
    num_free_ = static_cast<uint16_t>(num_free_ + b.slots);
    b = {};
    free_ids_.push_back(e.id);
    if (track_used_ && event_flags_shadow_ == kEventDesc) {
        // Linux: ask for the next interrupt at the next slot to consume, then a full fence
        // before looking at the ring again.
        store16(driver_area_, off_wrap(last_used_, used_wrap_));
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    return e;
}

void PackedDriver::disable_interrupts() {
    store16(driver_area_ + 2, kEventDisable);
    event_flags_shadow_ = kEventDisable;
}

bool PackedDriver::enable_interrupts() {
    // off_wrap before flags (2.8.10): the device reads them as one, never a DESC with a stale
    // offset.
    if (event_idx()) store16(driver_area_, off_wrap(last_used_, used_wrap_));
    event_flags_shadow_ = event_idx() ? kEventDesc : kEventEnable;
    store16(driver_area_ + 2, event_flags_shadow_, __ATOMIC_RELEASE);
    track_used_ = event_idx();
    // The area before the ring check: either the device sees it, or we see its used element.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return has_used();
}

bool PackedDriver::enable_interrupts_delayed() {
    if (event_idx()) {
        const uint32_t in_use = size_ - num_free_;
        uint32_t slot = last_used_ + in_use * 3 / 4;
        bool wrap = used_wrap_;
        if (slot >= size_) {
            slot -= size_;
            wrap = !wrap;
        }
        store16(driver_area_, off_wrap(static_cast<uint16_t>(slot), wrap));
    }
    event_flags_shadow_ = event_idx() ? kEventDesc : kEventEnable;
    store16(driver_area_ + 2, event_flags_shadow_, __ATOMIC_RELEASE);
    track_used_ = event_idx();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return has_used();
}

void PackedDriver::set_driver_event(uint16_t flags, uint16_t off_wrap) {
    store16(driver_area_, off_wrap);
    store16(driver_area_ + 2, flags, __ATOMIC_RELEASE);
    event_flags_shadow_ = flags;
    track_used_ = false;
}

PackedDesc PackedDriver::desc(uint16_t slot) const {
    const std::byte* p = ring_ + kDescSize * slot;
    PackedDesc d;
    d.flags = load16(p + kFlagsOffset, __ATOMIC_ACQUIRE);
    std::memcpy(&d.addr, p, 8);
    std::memcpy(&d.len, p + 8, 4);
    std::memcpy(&d.id, p + 12, 2);
    return d;
}

void PackedDriver::set_desc(uint16_t slot, const PackedDesc& d) {
    std::byte* p = ring_ + kDescSize * slot;
    std::memcpy(p, &d.addr, 8);
    std::memcpy(p + 8, &d.len, 4);
    std::memcpy(p + 12, &d.id, 2);
    store16(p + kFlagsOffset, d.flags, __ATOMIC_RELEASE);
}

GuestAddress PackedDriver::desc_addr(uint16_t slot) const {
    return GuestAddress(layout_.desc.raw() + kDescSize * slot);
}

PackedEventSuppress PackedDriver::driver_event() const {
    return {load16(driver_area_), load16(driver_area_ + 2)};
}

PackedEventSuppress PackedDriver::device_event() const {
    const uint32_t word =
        __atomic_load_n(reinterpret_cast<const uint32_t*>(device_area_), __ATOMIC_RELAXED);
    return {static_cast<uint16_t>(word & 0xffff), static_cast<uint16_t>(word >> 16)};
}

void PackedDriver::forge(std::span<const PackedDesc> descs) {
    if (!pending_.empty()) throw std::logic_error("PackedDriver: forge() with unpublished buffers");
    for (std::size_t k = 0; k < descs.size(); ++k) {
        PackedDesc d = descs[k];
        d.flags = static_cast<uint16_t>((d.flags & ~(kDescF_Avail | kDescF_Used)) | avail_bits());
        write_desc(next_avail_, d, k == 0);
        advance_avail();
    }
    publish();
}

GuestAddress PackedDriver::write_table(std::span<const PackedDesc> table) {
    const GuestAddress addr = memory_.alloc(kDescSize * std::max<std::size_t>(table.size(), 1), 16);
    if (!table.empty())
        std::memcpy(memory_.raw(addr, kDescSize * table.size()), table.data(),
                    kDescSize * table.size());
    return addr;
}

}  // namespace vfsdax::test
