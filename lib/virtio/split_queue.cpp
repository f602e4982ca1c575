// SPDX-License-Identifier: Apache-2.0
// SplitQueue: avail ring in, used ring out, chains walked from guest memory read once.
#include "virtio/split_queue.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "virtio/inline_chain.hpp"
#include "virtio/queue_factories.hpp"

namespace vfsdax::virtio {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; this engine reads them natively");

namespace {

// Ring fields are shared with a guest that runs concurrently: every access is one atomic
// access of the field's width, so the compiler neither tears nor repeats it.
template <typename T>
[[gnu::always_inline]] inline T load_relaxed(const T* p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
template <typename T>
[[gnu::always_inline]] inline T load_acquire(const T* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
[[gnu::always_inline]] inline void store_relaxed(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
template <typename T>
[[gnu::always_inline]] inline void store_release(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

// Success of push() and pop(): from a constant, the compiler loads the whole result in one
// instruction instead of merging the flag into the unused error byte.
constexpr std::expected<void, QueueError> kOk;
constexpr std::expected<bool, QueueError> kPopped{true};

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
      mask_(size - 1u),
      event_idx_((features & feature_bit(VIRTIO_RING_F_EVENT_IDX)) != 0),
      indirect_((features & feature_bit(VIRTIO_RING_F_INDIRECT_DESC)) != 0),
      avail_window_(size) {
    std::fill_n(in_flight_.begin(), size, kFree);
    kick_target_ = event_idx_ ? avail_event_ptr_ : &kick_sink_;
}

std::unexpected<QueueError> SplitQueue::fail(QueueError error) {
    broken_ = true;
    avail_idx_ = last_avail_idx_;
    avail_window_ = -1;
    std::fill_n(in_flight_.begin(), size_, kFree);
    return std::unexpected(error);
}

[[gnu::always_inline]] inline bool SplitQueue::refresh_avail_idx(uint16_t last) {
    // Acquire: the ring entries and descriptors the driver wrote before publishing idx are
    // visible once we see idx.
    const uint16_t idx = load_acquire(avail_idx_ptr());
    // A broken queue keeps avail_idx_ == last_avail_idx_, so pop() always lands here first,
    // and its window of -1 refuses any index.
    if (static_cast<uint16_t>(idx - last) > avail_window_) [[unlikely]]
        return false;
    avail_idx_ = idx;
    return true;
}

std::expected<bool, QueueError> SplitQueue::pop(DescriptorChain& chain) {
    const uint16_t last = last_avail_idx_;
    // Loaded before the acquire load in refresh_avail_idx(), after which the compiler would
    // load every field again.
    const uint16_t* const entry = avail_ring() + (last & mask_);
    if (last == avail_idx_) {
        if (!refresh_avail_idx(last)) [[unlikely]]
            return refuse_avail_idx();
        if (last == avail_idx_) return false;
    }
    const uint16_t head = load_relaxed(entry);
    // The driver owns no descriptor of a chain the device holds: a head handed out twice
    // would be pushed twice. One load refuses a head beyond the table too.
    if (in_flight_[head] != kFree) [[unlikely]]
        return refuse_head(head);
    // Taken before the walk, the head kept in the token rather than a register: fewer values
    // live across the walk. A chain the walk refuses breaks the queue, and fail() then frees
    // every head.
    take_head(last, head);
    chain.set_token_id(head);
    if (!walk_fast(head, chain)) [[unlikely]]
        return pop_slow(chain);
    return kPopped;
}

std::expected<bool, QueueError> SplitQueue::pop_slow(DescriptorChain& chain) {
    if (auto r = walk(chain.token().id, chain); !r) return fail(r.error());
    return true;
}

std::expected<bool, QueueError> SplitQueue::refuse_avail_idx() {
    if (broken_) return std::unexpected(QueueError::Broken);
    return fail(QueueError::BadAvailIndex);
}

std::expected<bool, QueueError> SplitQueue::refuse_head(uint16_t head) {
    return fail(head >= size_ ? QueueError::BadDescriptorIndex : QueueError::BadBufferId);
}

[[gnu::always_inline]] inline void SplitQueue::take_head(uint16_t last, uint16_t head) {
    in_flight_[head] = kInFlight;
    const uint16_t next = static_cast<uint16_t>(last + 1);
    last_avail_idx_ = next;
    // QEMU moves avail_event on every pop too, so a device that never toggles notifications
    // still gets kicks under EVENT_IDX.
    store_relaxed(kick_target_, next);
}

[[gnu::always_inline]] inline bool SplitQueue::walk_fast(uint16_t head, DescriptorChain& chain) {
    // One generation check for the whole chain: the chain is translated as of one moment.
    if (!memory_.is_current(region_cache_)) [[unlikely]]
        return false;
    // The queue's fields stay in memory (one operand each), the descriptor pointer in a
    // register.
    struct Cursor {
        const SplitQueue* queue;
        const vring_desc* at;

        [[gnu::always_inline]] uint16_t flags() const { return load_relaxed(&at->flags); }
        [[gnu::always_inline]] InlineBuffer buffer() const {
            return {load_relaxed(&at->addr), load_relaxed(&at->len)};
        }
        [[gnu::always_inline]] bool next(uint16_t& flags) {
            const uint16_t idx = load_relaxed(&at->next);
            if (idx >= queue->size_) return false;
            at = &queue->desc_table()[idx];
            flags = this->flags();
            return true;
        }
        // The head is the token's id, set by pop().
        [[gnu::always_inline]] void end(DescriptorChain& chain, uint16_t slots) const {
            chain.set_token_slots(slots);
        }
    };
    const Cursor cursor{this, &desc_table()[head]};
    return fill_inline_chain(chain, region_cache_, cursor, cursor.flags());
}

std::expected<std::span<std::byte>, MemoryError> SplitQueue::translate_buffer(uint64_t addr,
                                                                              uint32_t len) {
    if (size_ < DescriptorChain::kInlineSegments) return memory_.translate(GuestAddress(addr), len);
    return memory_.translate(GuestAddress(addr), len, region_cache_);
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
        auto span = translate_buffer(d.addr, d.len);
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
        auto span = translate_buffer(e.addr, e.len);
        if (!span) return std::unexpected(memory_error(span.error()));
        if (auto r = chain.add(*span, (e.flags & VRING_DESC_F_WRITE) != 0); !r) return r;
        if (!(e.flags & VRING_DESC_F_NEXT)) return {};
        if (e.next >= entries) return std::unexpected(QueueError::BadDescriptorIndex);
        idx = e.next;
    }
}

[[gnu::always_inline]] inline bool SplitQueue::push_used(const DescriptorChain& chain,
                                                         uint32_t written, uint32_t& next_used) {
    const uint16_t id = chain.token().id;
    uint8_t& state = in_flight_[id];
    // A broken queue has nothing in flight (fail() clears it): this check refuses it too.
    if (state != kInFlight) [[unlikely]]
        return false;
    // len may underestimate (2.7.8), never claim bytes beyond the writable buffers.
    if (written > chain.writable_bytes()) written = static_cast<uint32_t>(chain.writable_bytes());
    const uint32_t used = next_used_;
    // A 64-bit index: the address takes one instruction, no zero extension.
    const std::size_t slot = used & mask_;
    uint32_t* const elem = used_ring() + 2 * slot;
    uint16_t* const used_idx = used_idx_ptr();
    next_used = used + 1;
    next_used_ = next_used;
    store_relaxed(elem, uint32_t{id});
    store_relaxed(elem + 1, written);
    // Release: the element (and the data written into the buffers) before the index.
    store_release(used_idx, static_cast<uint16_t>(next_used));
    // Last: the compiler assumes a byte store may change any field, and would load again the
    // ones above.
    state = kFree;
    return true;
}

[[gnu::always_inline]] inline bool SplitQueue::decide_interrupt(uint32_t next) {
    const uint32_t pushed = next - signalled_used_;
    signalled_used_ = next;
    // Full fence: our used->idx store must be visible before we read the driver's
    // used_event/flags, or we could miss the driver's request for an interrupt (the driver
    // re-checks used->idx after writing them, with its own full barrier).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (event_idx_) {
        const uint16_t event = load_relaxed(used_event_ptr_);
        // vring_need_event(): did used->idx pass used_event + 1 in (old, new]? The left side
        // is below 2^16, so after more than 2^16 pushes (the 16-bit window is lost) it signals.
        return static_cast<uint16_t>(next - event - 1) < pushed;
    }
    const uint16_t flags = load_relaxed(reinterpret_cast<const uint16_t*>(rings_.avail));
    return (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
}

std::expected<void, QueueError> SplitQueue::push(const DescriptorChain& chain, uint32_t written) {
    uint32_t next;
    if (!push_used(chain, written, next)) [[unlikely]]
        return refuse_push<std::expected<void, QueueError>>();
    return kOk;
}

std::expected<bool, QueueError> SplitQueue::push_and_needs_interrupt(const DescriptorChain& chain,
                                                                     uint32_t written) {
    uint32_t next;
    if (!push_used(chain, written, next)) [[unlikely]]
        return refuse_push<std::expected<bool, QueueError>>();
    return decide_interrupt(next);
}

template <typename Result>
Result SplitQueue::refuse_push() {
    if (broken_) return std::unexpected(QueueError::Broken);
    return fail(QueueError::BadBufferId);
}

bool SplitQueue::needs_interrupt() {
    const uint32_t next = next_used_;
    if (next == signalled_used_) return false;
    return decide_interrupt(next);
}

void SplitQueue::disable_notifications() {
    if (!notifications_enabled_) return;
    notifications_enabled_ = false;
    // Under EVENT_IDX, avail_event simply stops following last_avail_idx_ (pop leaves it).
    kick_target_ = &kick_sink_;
    if (!event_idx_) store_relaxed(used_flags_ptr(), static_cast<uint16_t>(VRING_USED_F_NO_NOTIFY));
}

std::expected<bool, QueueError> SplitQueue::enable_notifications() {
    if (broken_) return std::unexpected(QueueError::Broken);
    notifications_enabled_ = true;
    if (event_idx_) {
        kick_target_ = avail_event_ptr_;
        store_relaxed(avail_event_ptr_, last_avail_idx_);
    } else {
        store_relaxed(used_flags_ptr(), uint16_t{0});
    }
    // Full fence: publish avail_event / the cleared flag before re-reading avail->idx. The
    // driver publishes avail->idx, fences, then reads them; one of us sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!refresh_avail_idx(last_avail_idx_)) return refuse_avail_idx();
    return avail_idx_ != last_avail_idx_;
}

std::string SplitQueue::describe() const {
    const uint16_t avail_idx = load_relaxed(avail_idx_ptr());
    const uint16_t avail_flags = load_relaxed(reinterpret_cast<const uint16_t*>(rings_.avail));
    const auto used_idx = static_cast<uint16_t>(next_used_);
    std::string text = fmt::format(
        "split ring of {}: avail idx {} ({} not popped), {} popped, used idx {} ({} in flight), "
        "avail flags {:#x}",
        size_, avail_idx, static_cast<uint16_t>(avail_idx - last_avail_idx_), last_avail_idx_,
        used_idx, static_cast<uint16_t>(last_avail_idx_ - used_idx), avail_flags);
    if (event_idx_) text += fmt::format(", used_event {}", load_relaxed(used_event_ptr_));
    text += notifications_enabled_ ? ", kicks on" : ", kicks off";
    if (broken_) text += ", broken";
    return text;
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
    if (!host_aligned(desc->data(), 16) || !host_aligned(avail->data(), 2) ||
        !host_aligned(used->data(), 4)) {
        return std::unexpected(QueueError::BadConfig);
    }
    SplitQueue::Rings rings{desc->data(), avail->data(), used->data()};
    return std::make_unique<SplitQueue>(memory, static_cast<uint16_t>(size), rings, features);
}

}  // namespace vfsdax::virtio
