// SPDX-License-Identifier: Apache-2.0
// SplitDriver: ring layout, buffer placement and notification logic from virtio 1.2, 2.7.
#include "split/split_driver.hpp"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vfsdax::test {

namespace {

constexpr unsigned kFeatureIndirectDesc = 28;  // VIRTIO_F_INDIRECT_DESC
constexpr unsigned kFeatureEventIdx = 29;      // VIRTIO_F_EVENT_IDX

// 2.7.10 / 2.7.13.4: true when the index moved from `old_idx` to `new_idx` past `event`.
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

uint16_t load16(const std::byte* p, int order = __ATOMIC_RELAXED) {
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), order);
}
void store16(std::byte* p, uint16_t v, int order = __ATOMIC_RELAXED) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, order);
}

}  // namespace

SplitDriver::SplitDriver(TestMemory& memory, uint16_t size, uint64_t features)
    : SplitDriver(memory, size, features,
                  Layout{memory.alloc(uint64_t{16} * size, 16), memory.alloc(6 + uint64_t{2} * size, 2),
                         memory.alloc(6 + uint64_t{8} * size, 4)}) {}

SplitDriver::SplitDriver(TestMemory& memory, uint16_t size, uint64_t features, Layout layout)
    : memory_(memory),
      size_(size),
      features_(features),
      layout_(layout),
      chains_(size),
      tables_(size) {
    if (size == 0) throw std::invalid_argument("SplitDriver: queue size 0");
    free_.reserve(size);
    for (uint32_t i = size; i-- > 0;) free_.push_back(static_cast<uint16_t>(i));
    // TestMemory starts zeroed: used->flags is 0 as 2.7.10.1 requires, and so is the rest.
}

bool SplitDriver::event_idx() const { return (features_ >> kFeatureEventIdx) & 1; }

virtio::QueueConfig SplitDriver::config(uint16_t max_size) const {
    virtio::QueueConfig c;
    c.max_size = max_size;
    c.size = size_;
    c.ready = true;
    c.desc = layout_.desc;
    c.driver = layout_.avail;
    c.device = layout_.used;
    return c;
}

DriverBuffer SplitDriver::alloc_buffer(uint32_t len, uint64_t align) {
    return DriverBuffer{memory_.alloc(len, align), len};
}

std::byte* SplitDriver::ptr(GuestAddress base, uint64_t offset, uint64_t len) const {
    return memory_.raw(GuestAddress(base.raw() + offset), len);
}

std::optional<uint16_t> SplitDriver::place(std::span<const SplitDesc> descs, uint64_t writable) {
    if (descs.empty()) throw std::invalid_argument("SplitDriver: a chain needs a buffer");
    if (descs.size() > free_.size()) return std::nullopt;
    std::vector<uint16_t>& taken = taken_scratch_;
    taken.resize(descs.size());
    for (auto& t : taken) {
        t = free_.back();
        free_.pop_back();
    }
    for (std::size_t i = 0; i < descs.size(); ++i) {
        SplitDesc d = descs[i];
        if (i + 1 < descs.size()) {
            d.flags |= kDescF_Next;
            d.next = taken[i + 1];
        }
        set_desc(taken[i], d);
    }
    const uint16_t head = taken[0];
    Chain& c = chains_[head];
    c.in_flight = true;
    c.descs.assign(taken.begin(), taken.end());  // keeps the per-head capacity
    c.writable = writable;
    ++in_flight_count_;
    set_avail_entry(avail_shadow_ & (size_ - 1), head);
    ++avail_shadow_;
    return head;
}

std::optional<uint16_t> SplitDriver::add(std::span<const DriverBuffer> readable,
                                         std::span<const DriverBuffer> writable) {
    std::vector<SplitDesc>& descs = desc_scratch_;
    descs.clear();
    uint64_t wbytes = 0;
    for (const auto& b : readable) descs.push_back({b.addr.raw(), b.len, 0, 0});
    for (const auto& b : writable) {
        descs.push_back({b.addr.raw(), b.len, kDescF_Write, 0});
        wbytes += b.len;
    }
    return place(descs, wbytes);
}

std::optional<uint16_t> SplitDriver::add_indirect(std::span<const DriverBuffer> readable,
                                                  std::span<const DriverBuffer> writable) {
    if (!((features_ >> kFeatureIndirectDesc) & 1)) {
        throw std::logic_error("SplitDriver: INDIRECT_DESC not negotiated");
    }
    const std::size_t n = readable.size() + writable.size();
    if (n == 0) throw std::invalid_argument("SplitDriver: a chain needs a buffer");
    if (free_.empty()) return std::nullopt;
    const uint16_t head = free_.back();
    // One table per head, reused while large enough (buffers are never freed in TestMemory).
    Table& t = tables_[head];
    if (t.capacity < n) {
        t.capacity = static_cast<uint32_t>(std::max<std::size_t>(n, 8));
        t.addr = memory_.alloc(uint64_t{16} * t.capacity, 16);
    }
    std::vector<SplitDesc>& table = desc_scratch_;
    table.clear();
    uint64_t wbytes = 0;
    for (const auto& b : readable) table.push_back({b.addr.raw(), b.len, 0, 0});
    for (const auto& b : writable) {
        table.push_back({b.addr.raw(), b.len, kDescF_Write, 0});
        wbytes += b.len;
    }
    for (std::size_t i = 0; i + 1 < n; ++i) {
        table[i].flags |= kDescF_Next;
        table[i].next = static_cast<uint16_t>(i + 1);
    }
    std::memcpy(ptr(t.addr, 0, 16 * n), table.data(), 16 * n);
    const SplitDesc pointer{t.addr.raw(), static_cast<uint32_t>(16 * n), kDescF_Indirect, 0};
    return place(std::span(&pointer, 1), wbytes);
}

void SplitDriver::publish() {
    // 2.7.13.3.1: descriptors and ring entries before the index.
    set_avail_idx(avail_shadow_);
    published_ = avail_shadow_;
}

bool SplitDriver::kick_needed() {
    // 2.7.13.4.1: idx visible before reading the device's suppression fields.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint16_t old_idx = kick_checked_;
    const uint16_t new_idx = published_;
    kick_checked_ = new_idx;
    if (old_idx == new_idx) return false;
    if (event_idx()) return need_event(avail_event(), new_idx, old_idx);
    return (used_flags() & kUsedF_NoNotify) == 0;
}

std::optional<SplitUsedElem> SplitDriver::get_used() {
    if (used_idx() == last_used_) return std::nullopt;  // acquire: the element after the index
    const SplitUsedElem e = used_elem(last_used_ & (size_ - 1));
    if (e.id >= size_ || !chains_[e.id].in_flight) {
        throw std::runtime_error("SplitDriver: device used id " + std::to_string(e.id) +
                                 ", not in flight");
    }
    Chain& c = chains_[e.id];
    if (e.len > c.writable) {
        throw std::runtime_error("SplitDriver: device claims " + std::to_string(e.len) +
                                 " bytes written into " + std::to_string(c.writable));
    }
    c.in_flight = false;
    for (uint16_t d : c.descs) free_.push_back(d);
    c.descs.clear();
    --in_flight_count_;
    ++last_used_;
    // Like Linux: with interrupts on under EVENT_IDX, ask for one at the next used entry.
    if (event_idx() && interrupts_enabled_) {
        set_used_event(last_used_);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    return e;
}

void SplitDriver::disable_interrupts() {
    interrupts_enabled_ = false;
    if (event_idx()) {
        // The furthest point: no interrupt until used->idx has gone all the way round.
        set_used_event(static_cast<uint16_t>(last_used_ - 1));
    } else {
        set_avail_flags(kAvailF_NoInterrupt);
    }
}

bool SplitDriver::enable_interrupts() {
    interrupts_enabled_ = true;
    if (event_idx()) {
        set_used_event(last_used_);
    } else {
        set_avail_flags(0);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return used_idx() != last_used_;
}

bool SplitDriver::enable_interrupts_delayed() {
    interrupts_enabled_ = true;
    if (!event_idx()) return enable_interrupts();
    const uint16_t bufs = static_cast<uint16_t>(static_cast<uint16_t>(avail_shadow_ - last_used_) * 3 / 4);
    set_used_event(static_cast<uint16_t>(last_used_ + bufs));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return static_cast<uint16_t>(used_idx() - last_used_) > bufs;
}

SplitDesc SplitDriver::desc(uint16_t i) const {
    SplitDesc d;
    std::memcpy(&d, ptr(layout_.desc, 16 * uint64_t{i}, 16), 16);
    return d;
}

void SplitDriver::set_desc(uint16_t i, const SplitDesc& d) {
    std::memcpy(ptr(layout_.desc, 16 * uint64_t{i}, 16), &d, 16);
}

GuestAddress SplitDriver::desc_addr(uint16_t i) const {
    return GuestAddress(layout_.desc.raw() + 16 * uint64_t{i});
}

uint16_t SplitDriver::avail_flags() const { return load16(ptr(layout_.avail, 0, 2)); }
void SplitDriver::set_avail_flags(uint16_t flags) { store16(ptr(layout_.avail, 0, 2), flags); }
uint16_t SplitDriver::avail_idx() const { return load16(ptr(layout_.avail, 2, 2)); }
void SplitDriver::set_avail_idx(uint16_t idx) {
    store16(ptr(layout_.avail, 2, 2), idx, __ATOMIC_RELEASE);
}
uint16_t SplitDriver::avail_entry(uint16_t slot) const {
    return load16(ptr(layout_.avail, 4 + 2 * uint64_t{slot}, 2));
}
void SplitDriver::set_avail_entry(uint16_t slot, uint16_t head) {
    store16(ptr(layout_.avail, 4 + 2 * uint64_t{slot}, 2), head);
}
uint16_t SplitDriver::used_event() const {
    return load16(ptr(layout_.avail, 4 + 2 * uint64_t{size_}, 2));
}
void SplitDriver::set_used_event(uint16_t event) {
    store16(ptr(layout_.avail, 4 + 2 * uint64_t{size_}, 2), event);
}
uint16_t SplitDriver::used_flags() const { return load16(ptr(layout_.used, 0, 2)); }
uint16_t SplitDriver::used_idx() const { return load16(ptr(layout_.used, 2, 2), __ATOMIC_ACQUIRE); }
SplitUsedElem SplitDriver::used_elem(uint16_t slot) const {
    const std::byte* p = ptr(layout_.used, 4 + 8 * uint64_t{slot}, 8);
    return SplitUsedElem{__atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_RELAXED),
                         __atomic_load_n(reinterpret_cast<const uint32_t*>(p + 4), __ATOMIC_RELAXED)};
}
uint16_t SplitDriver::avail_event() const {
    return load16(ptr(layout_.used, 4 + 8 * uint64_t{size_}, 2));
}

void SplitDriver::publish_raw_head(uint16_t head) {
    set_avail_entry(avail_shadow_ & (size_ - 1), head);
    ++avail_shadow_;
    publish();
}

GuestAddress SplitDriver::write_table(std::span<const SplitDesc> table) {
    const GuestAddress addr = memory_.alloc(std::max<uint64_t>(16 * table.size(), 16), 16);
    if (!table.empty()) std::memcpy(ptr(addr, 0, 16 * table.size()), table.data(), 16 * table.size());
    return addr;
}

}  // namespace vfsdax::test
