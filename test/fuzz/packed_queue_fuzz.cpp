// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a packed virtqueue over guest memory the fuzzer writes.
//
// Input: an 8-byte header (queue size, features, layout, number of operations), then the
// operations (pop, push in any order, bogus pushes, interrupt decisions, kick suppression, guest
// writes into the ring between calls), then the initial contents of guest RAM: descriptor ring,
// event areas, indirect tables and buffers alike. Nothing may crash or hang, every chain must lie
// in guest memory, and an error must leave the queue broken for good.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vfsdax/virtio/queue.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using namespace vfsdax::virtio;

namespace {

constexpr uint64_t kRamBase = 0;          // small addresses are easy for the fuzzer to hit
constexpr uint64_t kRamSize = 16384;
constexpr uint64_t kBarBase = 0x100000;   // a second region: lists may not cross into it
constexpr uint64_t kBarSize = 4096;
constexpr uint64_t kDriverArea = 0x800;   // right after the largest ring (128 * 16 bytes) at 0
constexpr uint64_t kDeviceArea = 0x804;

alignas(4096) std::byte ram[kRamSize];
alignas(4096) std::byte bar[kBarSize];

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool inside(const Segment& s, const std::byte* base, uint64_t size) {
    return s.data() >= base && s.size() <= size &&
           static_cast<uint64_t>(s.data() - base) <= size - s.size();
}

void check_chain(const DescriptorChain& c, uint16_t size) {
    check(c.token().id < size);
    check(c.token().ring_slots >= 1 && c.token().ring_slots <= size);
    check(c.readable_bytes() + c.writable_bytes() <= UINT32_MAX);
    uint64_t total = 0;
    for (const Segment& s : c.readable()) {
        check(!s.empty() && (inside(s, ram, kRamSize) || inside(s, bar, kBarSize)));
        total += s.size();
    }
    for (const Segment& s : c.writable()) {
        check(!s.empty() && (inside(s, ram, kRamSize) || inside(s, bar, kBarSize)));
        total += s.size();
    }
    check(total == c.readable_bytes() + c.writable_bytes());
}

struct Reader {
    const uint8_t* data;
    std::size_t size;
    std::size_t pos = 0;
    uint8_t byte() { return pos < size ? data[pos++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    Reader header{data, 8};
    const uint16_t queue_size = static_cast<uint16_t>(1 + header.u16() % 128);
    const uint8_t feature_bits = header.byte();
    const uint8_t layout = header.byte();
    const std::size_t op_bytes = std::size_t{header.u16()} % 512;
    (void)header.u16();  // reserved: keeps the header 8 bytes as seeds grow

    uint64_t features = feature_bit(VIRTIO_F_RING_PACKED) | feature_bit(VIRTIO_F_VERSION_1);
    if (feature_bits & 1) features |= feature_bit(VIRTIO_RING_F_INDIRECT_DESC);
    if (feature_bits & 2) features |= feature_bit(VIRTIO_RING_F_EVENT_IDX);

    Reader ops{data + 8, std::min(op_bytes, size - 8)};
    const std::size_t mem_at = 8 + ops.size;
    std::memset(ram, 0, sizeof ram);
    std::memset(bar, 0, sizeof bar);
    std::memcpy(ram, data + mem_at, std::min<std::size_t>(size - mem_at, kRamSize));

    GuestMemory memory;
    check(memory.add_region(GuestAddress(kRamBase), kRamSize, ram).has_value());
    check(memory.add_region(GuestAddress(kBarBase), kBarSize, bar).has_value());

    QueueConfig config;
    config.max_size = 128;
    config.size = queue_size;
    config.ready = true;
    config.desc = GuestAddress(kRamBase);
    config.driver = GuestAddress(kDriverArea);
    config.device = GuestAddress(kDeviceArea);
    // Now and then a layout the device must refuse (or accept: the BAR is memory too).
    switch (layout % 16) {
        case 1: config.desc = GuestAddress(kRamBase + 8); break;
        case 2: config.driver = GuestAddress(kDriverArea + 2); break;
        case 3: config.device = GuestAddress(kRamSize - 2); break;
        case 4: config.desc = GuestAddress(kRamSize - 16); break;
        case 5: config.desc = GuestAddress(kBarBase); break;
        case 6: config.size = static_cast<uint16_t>(129 + layout); config.max_size = 0xffff; break;
        default: break;
    }
    auto activated = activate_queue(config, memory, features);
    if (!activated) return 0;
    Queue& q = **activated;
    const uint16_t qsize = q.size();

    std::vector<DescriptorChain> in_flight;
    DescriptorChain chain;
    bool failed = false;
    // Once any call failed, every later call must say Broken.
    const auto observe = [&](bool ok, QueueError error) {
        if (failed) check(!ok && error == QueueError::Broken);
        if (!ok) failed = true;
        check(q.broken() == failed);
    };
    const auto pop = [&] {
        auto r = q.pop(chain);
        observe(r.has_value(), r.has_value() ? QueueError::Broken : r.error());
        if (r && *r) {
            check_chain(chain, qsize);
            in_flight.push_back(chain);
            check(in_flight.size() <= qsize);
        }
        return r.has_value() && *r;
    };
    // Alone, or (`decide`) with the interrupt decision for the batch it ends.
    const auto push = [&](std::size_t k, uint32_t written, bool decide) {
        bool ok;
        if (decide) {
            auto r = q.push_and_needs_interrupt(in_flight[k], written);
            ok = r.has_value();
            observe(ok, ok ? QueueError::Broken : r.error());
        } else {
            auto r = q.push(in_flight[k], written);
            ok = r.has_value();
            observe(ok, ok ? QueueError::Broken : r.error());
        }
        if (ok) in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(k));
    };

    while (ops.pos < ops.size) {
        const uint8_t op = ops.byte();
        switch (op % 8) {
            case 0:
            case 1:
                pop();
                break;
            case 2:
                if (!in_flight.empty()) {
                    const std::size_t k = ops.byte() % in_flight.size();
                    const uint16_t written = ops.u16();
                    push(k, written, written & 1);
                }
                break;
            case 3:
                (void)q.needs_interrupt();
                break;
            case 4:
                q.disable_notifications();
                break;
            case 5: {
                auto r = q.enable_notifications();
                observe(r.has_value(), r.has_value() ? QueueError::Broken : r.error());
                break;
            }
            case 6: {
                // The guest writes while the device works: a byte anywhere in the ring area.
                const uint16_t offset = ops.u16() % (kDeviceArea + 4);
                ram[offset] = static_cast<std::byte>(ops.byte());
                break;
            }
            case 7: {
                // A push of a chain the queue never gave out (or gave out and took back).
                DescriptorChain bogus;
                bogus.clear({ops.u16(), static_cast<uint16_t>(ops.byte())});
                auto r = q.push(bogus, 0);
                observe(r.has_value(), r.has_value() ? QueueError::Broken : r.error());
                break;
            }
        }
    }
    // Drain: bounded, whatever the ring says.
    for (int round = 0; round < 4 * qsize + 8 && !q.broken(); ++round) {
        if (!pop() && in_flight.empty()) break;
        while (!in_flight.empty() && !q.broken()) push(0, 1, in_flight.size() == 1);
        (void)q.needs_interrupt();
    }
    return 0;
}
