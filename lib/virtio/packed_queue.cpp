// SPDX-License-Identifier: Apache-2.0
// PackedQueue: pop/push over a packed descriptor ring, its event suppression areas, and every
// guest mistake as a QueueError (virtio 1.2, 2.8).
#include "virtio/packed_queue.hpp"

#include <endian.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "virtio/inline_chain.hpp"
#include "virtio/queue_factories.hpp"

namespace vfsdax::virtio {

namespace {

constexpr uint16_t kAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kUsed = 1u << VRING_PACKED_DESC_F_USED;
constexpr uint16_t kWrapBit = 1u << VRING_PACKED_EVENT_F_WRAP_CTR;
constexpr uint64_t kDescSize = sizeof(vring_packed_desc);
static_assert(kDescSize == 16 && sizeof(vring_packed_desc_event) == 4);

// A ring field (host-aligned, checked at activation), read once by an atomic load the compiler
// can neither repeat nor split.
template <typename T>
[[gnu::always_inline]] inline T load_relaxed(const T& field) {
    return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

// One descriptor, copied out of guest memory once: every check and every use reads the copy.
struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};

// A ring descriptor (host-aligned, checked at activation): each field is read once, by an
// atomic load the compiler can neither repeat nor split. Flags come from the caller's load.
[[gnu::always_inline]] inline Desc load_ring_desc(const vring_packed_desc& d, uint16_t flags) {
    return {le64toh(load_relaxed(d.addr)), le32toh(load_relaxed(d.len)),
            le16toh(load_relaxed(d.id)), flags};
}

// `order`: __ATOMIC_RELAXED or __ATOMIC_ACQUIRE, a constant.
template <int order>
[[gnu::always_inline]] inline uint16_t load_flags(const vring_packed_desc& d) {
    return le16toh(__atomic_load_n(&d.flags, order));
}

// An indirect table entry: the table may sit at any address, so copy it, and keep the compiler
// from fetching the fields from guest memory again.
inline Desc load_table_desc(const std::byte* guest) {
    vring_packed_desc raw;
    std::memcpy(&raw, guest, sizeof raw);
    asm volatile("" ::: "memory");
    return {le64toh(raw.addr), le32toh(raw.len), le16toh(raw.id), le16toh(raw.flags)};
}

// An available descriptor has AVAIL equal to the driver's wrap counter and USED not equal to
// it: `avail_bits` is kAvail for wrap 1, kUsed for wrap 0.
inline bool is_available(uint16_t flags, uint16_t avail_bits) {
    return (flags & (kAvail | kUsed)) == avail_bits;
}

// Results of push(), pop() and the interrupt decision: from a constant, the compiler loads the
// whole result in one instruction instead of merging the flag into the unused error byte.
constexpr std::expected<void, QueueError> kOk;
constexpr std::expected<bool, QueueError> kPopped{true};
constexpr std::expected<bool, QueueError> kEmpty{false};
constexpr std::expected<bool, QueueError> kBroken{std::unexpect, QueueError::Broken};
template <typename Result>
constexpr Result kInterrupt{true};

// A token as in_flight_ keeps it: one word, so push() checks it by one compare. It is also the
// token's image in memory, so the fast path stores a chain's token as one word.
static_assert(std::endian::native == std::endian::little, "token_word() is a token's image");
[[gnu::always_inline]] inline uint32_t token_word(DescriptorChain::Token token) {
    return uint32_t{token.id} | uint32_t{token.ring_slots} << 16;
}

QueueError from_memory_error(MemoryError error) {
    return error == MemoryError::Overflow ? QueueError::LengthOverflow
                                          : QueueError::AddressOutOfRange;
}

}  // namespace

std::expected<std::unique_ptr<Queue>, QueueError> make_packed_queue(const QueueConfig& config,
                                                                    const GuestMemory& memory,
                                                                    uint64_t features) {
    return PackedQueue::create(config, memory, features);
}

std::expected<std::unique_ptr<Queue>, QueueError> PackedQueue::create(const QueueConfig& config,
                                                                      const GuestMemory& memory,
                                                                      uint64_t features) {
    // 2^15 entries at most: the event offsets have 15 bits. Any size below that is fine.
    if (config.size == 0 || config.size > kMaxQueueSize)
        return std::unexpected(QueueError::BadConfig);
    if (!config.desc.is_aligned(16) || !config.driver.is_aligned(4) ||
        !config.device.is_aligned(4)) {
        return std::unexpected(QueueError::BadConfig);
    }
    // RAM never moves in host memory: translate the three areas once, keep the host views.
    auto ring = memory.translate(config.desc, uint64_t{config.size} * kDescSize);
    if (!ring) return std::unexpected(QueueError::AddressOutOfRange);
    auto driver = memory.translate(config.driver, sizeof(vring_packed_desc_event));
    if (!driver) return std::unexpected(QueueError::AddressOutOfRange);
    auto device = memory.translate(config.device, sizeof(vring_packed_desc_event));
    if (!device) return std::unexpected(QueueError::AddressOutOfRange);
    // Atomic accesses need the host addresses aligned as well (a VMM could map RAM oddly).
    const auto host_aligned = [](std::span<std::byte> s, uintptr_t alignment) {
        return reinterpret_cast<uintptr_t>(s.data()) % alignment == 0;
    };
    if (!host_aligned(*ring, alignof(vring_packed_desc)) || !host_aligned(*driver, 4) ||
        !host_aligned(*device, 4)) {
        return std::unexpected(QueueError::BadConfig);
    }
    return std::unique_ptr<Queue>(
        new PackedQueue(memory, reinterpret_cast<vring_packed_desc*>(ring->data()),
                        reinterpret_cast<uint32_t*>(driver->data()),
                        reinterpret_cast<uint32_t*>(device->data()), config.size, features));
}

PackedQueue::PackedQueue(const GuestMemory& memory, vring_packed_desc* ring, uint32_t* driver_event,
                         uint32_t* device_event, uint16_t size, uint64_t features)
    : memory_(memory),
      ring_(ring),
      ring_end_(ring + size),
      unwrapped_end_(ring + (size > DescriptorChain::kInlineSegments
                                 ? size - DescriptorChain::kInlineSegments
                                 : 0)),
      driver_event_(driver_event),
      device_event_(device_event),
      size_(size),
      event_idx_(features & feature_bit(VIRTIO_RING_F_EVENT_IDX)),
      indirect_(features & feature_bit(VIRTIO_RING_F_INDIRECT_DESC)),
      avail_bits_(kAvail),  // both wrap counters start at 1 (2.8.1)
      used_bits_(kAvail | kUsed) {
    std::fill_n(in_flight_.begin(), size, kFree);
}

bool PackedQueue::available_at(uint16_t slot) const {
    // Acquire: the rest of the descriptor (and of its list) is read after the flags.
    return is_available(load_flags<__ATOMIC_ACQUIRE>(ring_[slot]), avail_bits_);
}

std::expected<bool, QueueError> PackedQueue::unavailable() const {
    return broken_ ? kBroken : kEmpty;
}

std::expected<bool, QueueError> PackedQueue::pop_slow(DescriptorChain& chain) {
    // The list afresh, from its first descriptor's flags on: nothing the fast path read
    // counts (the guest may have rewritten the list since, a race it loses either way).
    const uint32_t slot = next_avail_;
    const uint16_t flags = load_flags<__ATOMIC_ACQUIRE>(ring_[slot]);
    if (!is_available(flags, avail_bits_)) return unavailable();
    auto list = read_list(slot, flags, chain);
    if (!list) return fail(list.error());
    // The buffer id is in the last descriptor of the list (2.8.6).
    if (!id_free(list->id)) return fail<std::expected<bool, QueueError>>(QueueError::BadBufferId);
    if (!fits(list->slots)) return fail<std::expected<bool, QueueError>>(QueueError::ChainTooLong);
    chain.set_token({list->id, static_cast<uint16_t>(list->slots)});
    take_list(*list);
    return kPopped;
}

[[gnu::always_inline]] inline bool PackedQueue::id_free(uint16_t id) const {
    return in_flight_[id] == kFree;
}

[[gnu::always_inline]] inline bool PackedQueue::fits(uint32_t slots) const {
    return in_flight_slots_ + slots <= size_;
}

[[gnu::always_inline]] inline void PackedQueue::take_list(List list) {
    const uint32_t size = size_;
    in_flight_slots_ += list.slots;
    in_flight_[list.id] = token_word({list.id, static_cast<uint16_t>(list.slots)});
    // From memory: one value fewer in a register through the list's walk.
    uint32_t next = next_avail_ + list.slots;
    if (next >= size) {
        next -= size;
        avail_bits_ ^= kAvail | kUsed;
    }
    next_avail_ = static_cast<uint16_t>(next);
}

template <bool kMayWrap>
[[gnu::always_inline]] inline bool PackedQueue::pop_fast(const vring_packed_desc* first,
                                                         uint16_t flags, DescriptorChain& chain) {
    List list;
    if (!read_list_fast<kMayWrap>(first, flags, chain, list) || !id_free(list.id) ||
        !fits(list.slots)) [[unlikely]] {
        return false;
    }
    take_list(list);
    return true;
}

template <typename Result>
Result PackedQueue::fail(QueueError error) {
    broken_ = true;
    avail_bits_ = kNeverAvailable;
    // Nothing in flight: push() refuses every chain by its in-flight check alone.
    std::fill_n(in_flight_.begin(), size_, kFree);
    in_flight_slots_ = 0;
    used_since_signal_ = 0;
    return std::unexpected(error);
}

// fill_inline_chain()'s view of the ring. The queue's fields stay in memory (one operand each),
// the descriptor pointer in a register. `kMayWrap`: whether the list may reach the ring's end.
template <bool kMayWrap>
struct PackedQueue::RingCursor {
    const PackedQueue* queue;
    const vring_packed_desc* at;
    uint32_t* token;

    [[gnu::always_inline]] InlineBuffer buffer() const {
        return {le64toh(load_relaxed(at->addr)), le32toh(load_relaxed(at->len))};
    }
    [[gnu::always_inline]] bool next(uint16_t& flags) {
        ++at;
        if constexpr (kMayWrap) {
            if (at == queue->ring_end_) [[unlikely]]
                at = queue->ring_;
        }
        flags = load_flags<__ATOMIC_RELAXED>(*at) & ~(kAvail | kUsed);
        return true;
    }
    // The buffer id only counts in the last descriptor (2.8.6): loaded there alone. The
    // token goes to the chain in one store, and to the caller in a register.
    [[gnu::always_inline]] void end(DescriptorChain& chain, uint16_t slots) const {
        *token = token_word({le16toh(load_relaxed(at->id)), slots});
        chain.set_token(std::bit_cast<DescriptorChain::Token>(*token));
    }
};

template <bool kMayWrap>
[[gnu::always_inline]] inline bool PackedQueue::read_list_fast(const vring_packed_desc* first,
                                                               uint16_t flags,
                                                               DescriptorChain& chain, List& list) {
    // One generation check for the whole list: the list is translated as of one moment.
    if (!memory_.is_current(region_cache_)) [[unlikely]]
        return false;
    // AVAIL and USED matter in the first descriptor only (pop() checked them).
    uint32_t token;
    if (!fill_inline_chain(chain, region_cache_, RingCursor<kMayWrap>{this, first, &token},
                           static_cast<uint16_t>(flags & ~(kAvail | kUsed)))) {
        return false;
    }
    list = {static_cast<uint16_t>(token), token >> 16};
    return true;
}

std::expected<bool, QueueError> PackedQueue::pop(DescriptorChain& chain) {
    const vring_packed_desc* const first = &ring_[next_avail_];
    // Acquire: the rest of the list is read after the first descriptor's flags, which the
    // driver writes last. Every later read uses this value, whatever the guest writes since.
    const uint16_t flags = load_flags<__ATOMIC_ACQUIRE>(*first);
    // A broken queue's avail_bits_ match no descriptor: it lands here too.
    if (!is_available(flags, avail_bits_)) return unavailable();
    if (first >= unwrapped_end_) [[unlikely]]
        return pop_near_end(first, flags, chain);
    // Each return a tail call or a constant (a wrapper's result would be copied, not passed
    // on), and every mistake left to pop_slow(): pop() itself calls nothing.
    if (!pop_fast<false>(first, flags, chain)) [[unlikely]]
        return pop_slow(chain);
    return kPopped;
}

std::expected<bool, QueueError> PackedQueue::pop_near_end(const vring_packed_desc* first,
                                                          uint16_t flags, DescriptorChain& chain) {
    if (!pop_fast<true>(first, flags, chain)) [[unlikely]]
        return pop_slow(chain);
    return kPopped;
}

std::expected<PackedQueue::List, QueueError> PackedQueue::read_list(uint32_t slot, uint16_t flags,
                                                                    DescriptorChain& chain) {
    vring_packed_desc* const ring = ring_;
    const uint32_t size = size_;
    chain.clear({});
    uint32_t slots = 0;
    Desc desc;
    for (;;) {
        desc = load_ring_desc(ring[slot], flags);
        ++slots;
        if (desc.flags & VRING_DESC_F_INDIRECT) [[unlikely]] {
            // Only alone in its list: never after a NEXT, never with NEXT (2.8.7).
            if (!indirect_ || slots != 1 || (desc.flags & VRING_DESC_F_NEXT)) {
                return std::unexpected(QueueError::BadIndirectTable);
            }
            if (auto r = read_indirect(chain, desc.addr, desc.len); !r)
                return std::unexpected(r.error());
            break;
        }
        if (auto r = add_segment(chain, desc.addr, desc.len, desc.flags & VRING_DESC_F_WRITE); !r) {
            return std::unexpected(r.error());
        }
        if (!(desc.flags & VRING_DESC_F_NEXT)) break;
        // A list holds at most size descriptors (2.8.18): one more would be a second lap.
        if (slots == size) return std::unexpected(QueueError::ChainTooLong);
        if (++slot == size) slot = 0;
        flags = load_flags<__ATOMIC_RELAXED>(ring[slot]);
    }
    if (chain.readable_bytes() + chain.writable_bytes() > UINT32_MAX) {
        return std::unexpected(QueueError::LengthOverflow);
    }
    return List{desc.id, slots};
}

std::expected<void, QueueError> PackedQueue::read_indirect(DescriptorChain& chain, uint64_t addr,
                                                           uint32_t len) {
    if (len == 0 || len % kDescSize != 0 || len / kDescSize > kMaxIndirectDescriptors) {
        return std::unexpected(QueueError::BadIndirectTable);
    }
    auto table = memory_.translate(GuestAddress(addr), len);
    if (!table) return std::unexpected(from_memory_error(table.error()));
    // Inside the table only WRITE means anything (2.8.7): the list is the whole table, so NEXT
    // and the buffer ids are ignored. INDIRECT would be a nested table: refused.
    for (uint64_t offset = 0; offset < len; offset += kDescSize) {
        const Desc desc = load_table_desc(table->data() + offset);
        if (desc.flags & VRING_DESC_F_INDIRECT) return std::unexpected(QueueError::NestedIndirect);
        if (auto r = add_segment(chain, desc.addr, desc.len, desc.flags & VRING_DESC_F_WRITE); !r) {
            return r;
        }
    }
    return {};
}

std::expected<void, QueueError> PackedQueue::add_segment(DescriptorChain& chain, uint64_t addr,
                                                         uint32_t len, bool writable) {
    if (len == 0) [[unlikely]]
        return std::unexpected(QueueError::ZeroLength);
    // A queue smaller than kInlineSegments leaves region_cache_ empty, which keeps
    // read_list_fast() off it: a list of up to kInlineSegments descriptors there would take
    // a slot twice.
    auto span = size_ < DescriptorChain::kInlineSegments
                    ? memory_.translate(GuestAddress(addr), len)
                    : memory_.translate(GuestAddress(addr), len, region_cache_);
    if (!span) [[unlikely]]
        return std::unexpected(from_memory_error(span.error()));
    return chain.add(*span, writable);
}

[[gnu::always_inline]] inline bool PackedQueue::push_used(const DescriptorChain& chain,
                                                          uint32_t written, uint32_t& slots) {
    // The token in one load; id and slot count come out of it.
    const uint32_t token = token_word(chain.token());
    const uint16_t id = static_cast<uint16_t>(token);
    uint32_t& state = in_flight_[id];
    // Only a chain in flight, with the slot count it was popped with, matches its entry (see
    // kFree): every chain of a broken queue (nothing in flight) fails too.
    if (state != token) [[unlikely]]
        return false;
    slots = token >> 16;
    // pop() keeps a chain's bytes under 2^32 in all: its writable bytes fit 32 bits.
    written = std::min(written, static_cast<uint32_t>(chain.writable_bytes()));
    // One used element for the whole list, at next_used: id and len first, flags last with
    // release. AVAIL and USED both equal our wrap counter; WRITE says len means something.
    // Position and wrap bits in locals: the guest ring stores could alias the members.
    const uint32_t at = next_used_;
    const uint16_t used_bits = used_bits_;
    vring_packed_desc& used = ring_[at];
    std::atomic_ref(used.id).store(htole16(id), std::memory_order_relaxed);
    std::atomic_ref(used.len).store(htole32(written), std::memory_order_relaxed);
    const uint16_t flags = written ? used_bits | VRING_DESC_F_WRITE : used_bits;
    std::atomic_ref(used.flags).store(htole16(flags), std::memory_order_release);

    state = kFree;
    in_flight_slots_ -= slots;
    // Skip the rest of the slots the list took (2.8.6).
    const uint32_t size = size_;
    uint32_t next = at + slots;
    if (next >= size) {
        next -= size;
        used_bits_ = used_bits ^ (kAvail | kUsed);
    }
    next_used_ = static_cast<uint16_t>(next);
    return true;
}

template <typename Result>
[[gnu::always_inline]] inline Result PackedQueue::decide_interrupt(uint32_t pushed) {
    // Our used flags must be visible before we read what the driver asks for (it re-checks the
    // ring after writing the area; one of us sees the other).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // One 32-bit load: off_wrap and flags from the same moment.
    const uint32_t word = le32toh(std::atomic_ref(*driver_event_).load(std::memory_order_relaxed));
    const uint16_t off_wrap = word & 0xffff;
    // The flags are the low 2 bits of the upper half (the other 14 bits are reserved).
    // The count of used slots starts afresh in every case, read only where it counts.
    // ENABLE (0), every driver's state at the start, first: one test.
    static_assert(VRING_PACKED_EVENT_FLAG_ENABLE == 0);
    if ((word & uint32_t{0x3} << 16) == 0) {
        used_since_signal_ = 0;
        return kInterrupt<Result>;
    }
    const uint32_t flags = (word >> 16) & 0x3;
    // DESC means something only with EVENT_IDX; the reserved value 3 means "always".
    if (flags != VRING_PACKED_EVENT_FLAG_DESC || !event_idx_) {
        used_since_signal_ = 0;
        return Result(flags != VRING_PACKED_EVENT_FLAG_DISABLE);
    }
    const uint64_t advanced = used_since_signal_ + pushed;
    used_since_signal_ = 0;

    // The driver wants an interrupt once the descriptor at (offset, wrap) has been used: when
    // the used slots since the last decision cover it. Slots are numbered over two laps
    // (2 * size positions); a wrap counter of 1 marks the first lap.
    const uint32_t offset = off_wrap & ~kWrapBit;
    if (offset >= size_) return Result(false);  // no such descriptor: it is never used
    const uint32_t lap = 2u * size_;
    if (advanced >= lap) return Result(true);  // every position was passed
    const uint32_t event = offset + ((off_wrap & kWrapBit) ? 0 : size_);
    const uint32_t now = next_used_ + (used_bits_ ? 0 : size_);
    const uint32_t behind = now >= event ? now - event : now + lap - event;
    // 0 < behind <= advanced (behind 0 wraps to the largest value).
    return Result(behind - 1 < advanced);
}

std::expected<void, QueueError> PackedQueue::push(const DescriptorChain& chain, uint32_t written) {
    uint32_t slots;
    if (!push_used(chain, written, slots)) [[unlikely]]
        return refuse_push<std::expected<void, QueueError>>();
    used_since_signal_ += slots;
    return kOk;
}

std::expected<bool, QueueError> PackedQueue::push_and_needs_interrupt(const DescriptorChain& chain,
                                                                      uint32_t written) {
    uint32_t slots;
    if (!push_used(chain, written, slots)) [[unlikely]]
        return refuse_push<std::expected<bool, QueueError>>();
    return decide_interrupt<std::expected<bool, QueueError>>(slots);
}

template <typename Result>
Result PackedQueue::refuse_push() {
    if (broken_) return std::unexpected(QueueError::Broken);
    return fail(QueueError::BadBufferId);
}

bool PackedQueue::needs_interrupt() {
    // A broken queue pushes nothing (fail() zeroed the count): no broken_ test needed.
    if (used_since_signal_ == 0) return false;
    return decide_interrupt<bool>(0);
}

void PackedQueue::write_device_event(uint16_t flags, uint16_t off_wrap) {
    const uint32_t word = uint32_t{off_wrap} | uint32_t{flags} << 16;
    if (word == device_event_shadow_) return;
    device_event_shadow_ = word;
    std::atomic_ref(*device_event_).store(htole32(word), std::memory_order_relaxed);
}

void PackedQueue::disable_notifications() {
    if (broken_) return;
    write_device_event(VRING_PACKED_EVENT_FLAG_DISABLE, 0);
}

std::expected<bool, QueueError> PackedQueue::enable_notifications() {
    if (broken_) return std::unexpected(QueueError::Broken);
    if (event_idx_) {
        // Kick me when you make the next descriptor I will look at available.
        write_device_event(
            VRING_PACKED_EVENT_FLAG_DESC,
            static_cast<uint16_t>(next_avail_ | (avail_bits_ == kAvail ? kWrapBit : 0)));
    } else {
        write_device_event(VRING_PACKED_EVENT_FLAG_ENABLE, 0);
    }
    // The area must be visible before we look at the ring again (the driver checks the area
    // after publishing: either it kicks, or we see its buffer here).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return available_at(next_avail_);
}

std::string PackedQueue::describe() const {
    const uint32_t driver = le32toh(__atomic_load_n(driver_event_, __ATOMIC_RELAXED));
    const uint32_t device = le32toh(__atomic_load_n(device_event_, __ATOMIC_RELAXED));
    std::string text = fmt::format(
        "packed ring of {}: next avail {} (wrap {}, {}), next used {} (wrap {}), {} slots in "
        "flight, driver event flags {} off_wrap {:#x}, device event flags {} off_wrap {:#x}",
        size_, next_avail_, avail_bits_ == kAvail ? 1 : 0,
        available_at(next_avail_) ? "available" : "not available", next_used_,
        used_bits_ != 0 ? 1 : 0, in_flight_slots_, driver >> 16, driver & 0xffff, device >> 16,
        device & 0xffff);
    if (broken_) text += ", broken";
    return text;
}

}  // namespace vfsdax::virtio
