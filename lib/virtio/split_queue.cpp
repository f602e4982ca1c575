// SplitQueue: avail ring in, used ring out, chains walked from guest memory read once.
#include "virtio/split_queue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "virtio/queue_factories.hpp"

namespace vfsdax::virtio {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; this engine reads them natively");

namespace {

// Ring fields are shared with a guest that runs concurrently: every access is one atomic
// access of the field's width, so the compiler neither tears nor repeats it.
template <typename T>
T load_relaxed(const T* p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
template <typename T>
T load_acquire(const T* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void store_relaxed(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
template <typename T>
void store_release(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

// Success of push(): from a constant, the compiler loads the whole result in one instruction
// instead of merging the flag into the unused error bytes.
constexpr std::expected<void, QueueError> kOk;

QueueError memory_error(MemoryError e) {
    return e == MemoryError::Overflow ? QueueError::LengthOverflow : QueueError::AddressOutOfRange;
}

}  // namespace

// One fetch of a 16-byte descriptor (an indirect table may be unaligned, hence memcpy), then
// an empty asm that claims to change both words: the compiler must use these register copies
// and can never re-read a field from guest memory after checking it (no double fetch).
inline SplitQueue::Desc SplitQueue::read_desc(const std::byte* p) {
    uint64_t lo, hi;
    std::memcpy(&lo, p, 8);
    std::memcpy(&hi, p + 8, 8);
    asm("" : "+r"(lo), "+r"(hi));
    return Desc{lo, static_cast<uint32_t>(hi), static_cast<uint16_t>(hi >> 32),
                static_cast<uint16_t>(hi >> 48)};
}

SplitQueue::SplitQueue(const GuestMemory& memory, uint16_t size, Rings rings, uint64_t features)
    : memory_(memory),
      rings_(rings),
      used_event_ptr_(avail_ring() + size),
      avail_event_ptr_(reinterpret_cast<uint16_t*>(used_ring() + 2 * size)),
      size_(size),
      mask_(static_cast<uint16_t>(size - 1)),
      fast_limit_(
          static_cast<uint16_t>(std::min<std::size_t>(size, DescriptorChain::kInlineSegments))),
      event_idx_((features & feature_bit(VIRTIO_RING_F_EVENT_IDX)) != 0),
      indirect_((features & feature_bit(VIRTIO_RING_F_INDIRECT_DESC)) != 0),
      follow_avail_event_(event_idx_),
      in_flight_(size, 0) {}

[[gnu::always_inline]] inline std::expected<void, QueueError> SplitQueue::refresh_avail_idx() {
    // A broken queue keeps avail_idx_ == last_avail_idx_, so pop() always lands here first.
    if (broken_) [[unlikely]]
        return std::unexpected(QueueError::Broken);
    // Acquire: the ring entries and descriptors the driver wrote before publishing idx are
    // visible once we see idx.
    const uint16_t idx = load_acquire(avail_idx_ptr());
    if (static_cast<uint16_t>(idx - last_avail_idx_) > size_) [[unlikely]] {
        return fail(QueueError::BadAvailIndex);
    }
    avail_idx_ = idx;
    return {};
}

std::expected<bool, QueueError> SplitQueue::pop(DescriptorChain& chain) {
    // Ring fields are copied to locals: the atomic accesses to guest memory below would
    // otherwise make the compiler reload every member after each of them.
    uint16_t last = last_avail_idx_;
    if (last == avail_idx_) {
        if (auto r = refresh_avail_idx(); !r) [[unlikely]]
            return std::unexpected(r.error());
        if (last == avail_idx_) return false;
    }
    const uint16_t head = load_relaxed(avail_ring() + (last & mask_));
    if (head >= size_) [[unlikely]]
        return fail(QueueError::BadDescriptorIndex);
    // The driver owns no descriptor of a chain the device holds: a head handed out twice
    // would be pushed twice.
    uint8_t& in_flight = in_flight_[head];
    if (in_flight) [[unlikely]]
        return fail(QueueError::BadBufferId);
    if (!walk_fast(head, chain)) [[unlikely]] {
        if (auto r = walk(head, chain); !r) return fail(r.error());
    }
    in_flight = 1;
    last_avail_idx_ = ++last;
    // Kick me when you add past what I have consumed (QEMU does the same on every pop), so a
    // device that never toggles notifications still gets kicks under EVENT_IDX.
    if (follow_avail_event_) store_relaxed(avail_event_ptr_, last);
    return true;
}

[[gnu::always_inline]] inline bool SplitQueue::walk_fast(uint16_t head, DescriptorChain& chain) {
    // One generation check for the whole chain: the chain is translated as of one moment.
    if (!memory_.is_current(region_cache_)) [[unlikely]]
        return false;
    const GuestMemory::RegionCache cache = region_cache_;
    const std::byte* const table = rings_.desc;
    Segment* const segments = chain.inline_segments();
    const uint32_t size = size_;
    const uint32_t limit = fast_limit_;
    uint32_t idx = head;
    uint32_t count = 0, readable = 0;
    uint64_t readable_bytes = 0, writable_bytes = 0;
    for (;;) {
        const Desc d = read_desc(table + std::size_t{idx} * 16);
        if (d.flags & VRING_DESC_F_INDIRECT) return false;
        if (!cache.holds_nonempty(d.addr, d.len)) return false;
        if (d.flags & VRING_DESC_F_WRITE) {
            writable_bytes += d.len;
        } else {
            // Every length is non-zero: a writable one was seen iff writable_bytes != 0.
            if (writable_bytes != 0) return false;
            ++readable;
            readable_bytes += d.len;
        }
        segments[count++] = Segment(cache.host + (d.addr - cache.base), d.len);
        if (!(d.flags & VRING_DESC_F_NEXT)) break;
        // Also the loop bound: limit <= size, so a chain that revisits a descriptor ends here.
        if (count == limit) return false;
        idx = d.next;
        if (idx >= size) return false;
    }
    // At most kInlineSegments 32-bit lengths: no 64-bit overflow.
    if (readable_bytes + writable_bytes > UINT32_MAX) return false;
    chain.assign_inline(count, readable, readable_bytes, writable_bytes,
                        {head, static_cast<uint16_t>(count)});
    return true;
}

std::expected<void, QueueError> SplitQueue::walk(uint16_t head, DescriptorChain& chain) {
    chain.clear({head, 0});
    const uint32_t size = size_;
    uint32_t budget = size;  // table entries we may still read: bounds loops to the queue size
    uint32_t idx = head;
    uint64_t total = 0;  // chain bytes; each length < 2^32, so no 64-bit overflow
    for (;;) {
        const Desc d = read_desc(rings_.desc + std::size_t{idx} * 16);
        if (d.flags & VRING_DESC_F_INDIRECT) [[unlikely]] {
            if (!indirect_ || (d.flags & VRING_DESC_F_NEXT)) {
                return std::unexpected(QueueError::BadIndirectTable);
            }
            if (auto r = walk_indirect(d.addr, d.len, chain); !r) return r;
            total = chain.readable_bytes() + chain.writable_bytes();
            break;
        }
        if (d.len == 0) [[unlikely]]
            return std::unexpected(QueueError::ZeroLength);
        auto span = memory_.translate(GuestAddress(d.addr), d.len, region_cache_);
        if (!span) [[unlikely]]
            return std::unexpected(memory_error(span.error()));
        if (auto r = chain.add(*span, (d.flags & VRING_DESC_F_WRITE) != 0); !r) [[unlikely]] {
            return r;
        }
        total += d.len;
        if (!(d.flags & VRING_DESC_F_NEXT)) break;
        idx = d.next;
        if (idx >= size) [[unlikely]]
            return std::unexpected(QueueError::BadDescriptorIndex);
        if (--budget == 0) [[unlikely]]
            return std::unexpected(QueueError::ChainTooLong);
    }
    if (total > UINT32_MAX) [[unlikely]]
        return std::unexpected(QueueError::LengthOverflow);
    chain.set_token({head, static_cast<uint16_t>(size - budget + 1)});
    return {};
}

std::expected<void, QueueError> SplitQueue::walk_indirect(uint64_t addr, uint32_t len,
                                                          DescriptorChain& chain) {
    if (len == 0 || len % 16 != 0) return std::unexpected(QueueError::BadIndirectTable);
    auto table = memory_.translate(GuestAddress(addr), len);
    if (!table) return std::unexpected(memory_error(table.error()));
    const uint32_t entries = len / 16;
    // A chain, indirect entries included, holds at most queue-size buffers (2.7.5.3.1); the
    // main-table part is already in `chain`. Within the table, a chain longer than the table
    // is a loop.
    const std::size_t so_far = chain.size();
    const uint32_t limit = std::min<uint32_t>(entries, static_cast<uint32_t>(size_ - so_far));
    const std::byte* base = table->data();
    uint32_t visited = 0;
    uint32_t idx = 0;
    for (;;) {
        if (visited == limit) return std::unexpected(QueueError::ChainTooLong);
        ++visited;
        const Desc e = read_desc(base + std::size_t{idx} * 16);
        if (e.flags & VRING_DESC_F_INDIRECT) return std::unexpected(QueueError::NestedIndirect);
        if (e.len == 0) return std::unexpected(QueueError::ZeroLength);
        auto span = memory_.translate(GuestAddress(e.addr), e.len, region_cache_);
        if (!span) return std::unexpected(memory_error(span.error()));
        if (auto r = chain.add(*span, (e.flags & VRING_DESC_F_WRITE) != 0); !r) return r;
        if (!(e.flags & VRING_DESC_F_NEXT)) return {};
        if (e.next >= entries) return std::unexpected(QueueError::BadDescriptorIndex);
        idx = e.next;
    }
}

std::expected<void, QueueError> SplitQueue::push(const DescriptorChain& chain, uint32_t written) {
    if (broken_) [[unlikely]]
        return std::unexpected(QueueError::Broken);
    const uint16_t id = chain.token().id;
    if (id >= size_ || !in_flight_[id]) [[unlikely]]
        return fail(QueueError::BadBufferId);
    in_flight_[id] = 0;
    // len may underestimate (2.7.8), never claim bytes beyond the writable buffers.
    if (written > chain.writable_bytes()) written = static_cast<uint32_t>(chain.writable_bytes());
    const uint16_t used = next_used_idx_;
    uint32_t* elem = used_ring() + 2 * (used & mask_);
    next_used_idx_ = static_cast<uint16_t>(used + 1);
    ++unsignalled_;
    store_relaxed(elem, uint32_t{id});
    store_relaxed(elem + 1, written);
    // Release: the element (and the data written into the buffers) before the index.
    store_release(used_idx_ptr(), static_cast<uint16_t>(used + 1));
    return kOk;
}

bool SplitQueue::needs_interrupt() {
    const uint32_t pushed = unsignalled_;
    if (pushed == 0) return false;
    unsignalled_ = 0;
    // Full fence: our used->idx store must be visible before we read the driver's
    // used_event/flags, or we could miss the driver's request for an interrupt (the driver
    // re-checks used->idx after writing them, with its own full barrier).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (event_idx_) {
        // More than 2^16 pushes since the last decision: the 16-bit window is lost, signal.
        if (pushed > 0xffff) [[unlikely]]
            return true;
        const uint16_t event = load_relaxed(used_event_ptr_);
        const uint16_t new_idx = next_used_idx_;
        const uint16_t old_idx = static_cast<uint16_t>(new_idx - pushed);
        // vring_need_event(): did used->idx pass used_event + 1 in (old, new]?
        return static_cast<uint16_t>(new_idx - event - 1) <
               static_cast<uint16_t>(new_idx - old_idx);
    }
    const uint16_t flags = load_relaxed(reinterpret_cast<const uint16_t*>(rings_.avail));
    return (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
}

void SplitQueue::disable_notifications() {
    if (!notifications_enabled_) return;
    notifications_enabled_ = false;
    follow_avail_event_ = false;
    // Under EVENT_IDX, avail_event simply stops following last_avail_idx_ (pop leaves it).
    if (!event_idx_) store_relaxed(used_flags_ptr(), static_cast<uint16_t>(VRING_USED_F_NO_NOTIFY));
}

std::expected<bool, QueueError> SplitQueue::enable_notifications() {
    if (broken_) return std::unexpected(QueueError::Broken);
    notifications_enabled_ = true;
    follow_avail_event_ = event_idx_;
    if (event_idx_) {
        store_relaxed(avail_event_ptr_, last_avail_idx_);
    } else {
        store_relaxed(used_flags_ptr(), uint16_t{0});
    }
    // Full fence: publish avail_event / the cleared flag before re-reading avail->idx. The
    // driver publishes avail->idx, fences, then reads them; one of us sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (auto r = refresh_avail_idx(); !r) return std::unexpected(r.error());
    return avail_idx_ != last_avail_idx_;
}

std::expected<std::unique_ptr<Queue>, QueueError> make_split_queue(const QueueConfig& config,
                                                                   const GuestMemory& memory,
                                                                   uint64_t features) {
    const uint32_t size = config.size;
    if (size == 0 || size > kMaxQueueSize || (size & (size - 1)) != 0) {
        return std::unexpected(QueueError::BadConfig);
    }
    // Virtio 1.2, 2.7 table: alignment and size of each part.
    if (!config.desc.is_aligned(16) || !config.driver.is_aligned(2) ||
        !config.device.is_aligned(4)) {
        return std::unexpected(QueueError::BadConfig);
    }
    auto desc = memory.translate(config.desc, uint64_t{16} * size);
    auto avail = memory.translate(config.driver, 6 + uint64_t{2} * size);
    auto used = memory.translate(config.device, 6 + uint64_t{8} * size);
    if (!desc || !avail || !used) return std::unexpected(QueueError::AddressOutOfRange);
    // Atomic accesses need host alignment too (a region's host base is normally page-aligned).
    const auto host_aligned = [](const std::byte* p, std::size_t a) {
        return reinterpret_cast<uintptr_t>(p) % a == 0;
    };
    if (!host_aligned(avail->data(), 2) || !host_aligned(used->data(), 4)) {
        return std::unexpected(QueueError::BadConfig);
    }
    SplitQueue::Rings rings{desc->data(), avail->data(), used->data()};
    return std::make_unique<SplitQueue>(memory, static_cast<uint16_t>(size), rings, features);
}

}  // namespace vfsdax::virtio
