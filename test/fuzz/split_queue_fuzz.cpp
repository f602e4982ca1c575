// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the split virtqueue engine against arbitrary guest memory.
//
// Input: a 12-byte header, then the guest RAM contents (descriptor table, avail and used
// rings, indirect tables and buffers all come from the input) and, interleaved, the operation
// script. Header:
//   [0]     queue size: 1 << (b % 9), or the raw byte when bit 7 is set (not a power of two)
//   [1]     features: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
//   [2]     layout: bit 0 set takes ring addresses from [3..8], else the spec layout at RAM start
//   [3..8]  desc, avail, used offsets into RAM (16 bits each, may be misaligned or outside)
//   [9]     number of operations
//   [10..11] where in the input the operation script starts (modulo the input size)
// The device must never crash, hang, touch memory outside guest RAM, or leave the broken state.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "vfsdax/memory/guest_memory.hpp"
#include "vfsdax/virtio/queue.hpp"

using namespace vfsdax;
using namespace vfsdax::virtio;

namespace {

constexpr uint64_t kRamBase = 0x1000;
constexpr std::size_t kRamSize = 64 * 1024;

// An invariant broke: crash loudly so libFuzzer records the input.
[[noreturn]] void bug() { __builtin_trap(); }

struct Script {
    const uint8_t* data;
    std::size_t size;
    std::size_t pos;
    uint8_t byte() { return size == 0 ? 0 : data[pos++ % size]; }
    uint16_t word() { return static_cast<uint16_t>(byte() | byte() << 8); }
};

void check_chain(const DescriptorChain& chain, const std::byte* ram) {
    uint64_t total = 0;
    for (const Segment& s : chain.readable()) {
        if (s.data() < ram || s.data() + s.size() > ram + kRamSize || s.empty()) bug();
        // Touch both ends: ASan sees any out-of-bounds span.
        volatile std::byte first = s.front();
        volatile std::byte last = s.back();
        (void)first;
        (void)last;
        total += s.size();
    }
    for (const Segment& s : chain.writable()) {
        if (s.data() < ram || s.data() + s.size() > ram + kRamSize || s.empty()) bug();
        s.front() = std::byte{0xa5};
        s.back() = std::byte{0x5a};
        total += s.size();
    }
    if (total != chain.readable_bytes() + chain.writable_bytes() || total > UINT32_MAX) bug();
}

void expect_broken(Queue& q) {
    if (!q.broken()) bug();
    DescriptorChain c;
    c.clear({0, 0});
    auto p = q.pop(c);
    if (p || p.error() != QueueError::Broken) bug();
    auto u = q.push(c, 0);
    if (u || u.error() != QueueError::Broken) bug();
    auto e = q.enable_notifications();
    if (e || e.error() != QueueError::Broken) bug();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    if (size < 12) return 0;
    const uint8_t size_byte = data[0];
    const uint16_t qsize = (size_byte & 0x80) ? size_byte : static_cast<uint16_t>(1u << (size_byte % 9));
    uint64_t features = feature_bit(VIRTIO_F_VERSION_1);
    if (data[1] & 1) features |= feature_bit(VIRTIO_RING_F_INDIRECT_DESC);
    if (data[1] & 2) features |= feature_bit(VIRTIO_RING_F_EVENT_IDX);

    auto ram = std::make_unique<std::byte[]>(kRamSize);
    const std::size_t body = size - 12;
    std::memcpy(ram.get(), data + 12, std::min(body, kRamSize));

    GuestMemory memory;
    if (!memory.add_region(GuestAddress(kRamBase), kRamSize, ram.get())) bug();

    QueueConfig config;
    config.max_size = 256;
    config.size = qsize;
    config.ready = true;
    if (data[2] & 1) {
        auto off = [&](int i) { return static_cast<uint64_t>(data[3 + 2 * i] | data[4 + 2 * i] << 8); };
        config.desc = GuestAddress(kRamBase + off(0));
        config.driver = GuestAddress(kRamBase + off(1));
        config.device = GuestAddress(kRamBase + off(2));
    } else {
        const uint64_t desc = kRamBase;
        const uint64_t avail = desc + 16 * uint64_t{qsize};
        const uint64_t used = (avail + 6 + 2 * uint64_t{qsize} + 3) & ~uint64_t{3};
        config.desc = GuestAddress(desc);
        config.driver = GuestAddress(avail);
        config.device = GuestAddress(used);
    }

    auto activated = activate_queue(config, memory, features);
    if (!activated) return 0;
    Queue& q = **activated;
    if (q.size() != qsize) bug();

    Script script{data, size, static_cast<std::size_t>(data[10] | data[11] << 8) % size};
    std::vector<DescriptorChain> held;
    DescriptorChain chain;
    const int ops = data[9];
    for (int i = 0; i < ops; ++i) {
        const uint8_t op = script.byte();
        switch (op % 8) {
            case 0:
            case 1: {  // pop
                auto p = q.pop(chain);
                if (!p) {
                    expect_broken(q);
                    return 0;
                }
                if (*p) {
                    check_chain(chain, ram.get());
                    if (chain.token().id >= qsize) bug();
                    held.push_back(chain);
                    if (held.size() > qsize) bug();  // more chains in flight than the queue holds
                }
                break;
            }
            case 2: {  // push a held chain, any order
                if (held.empty()) break;
                const std::size_t k = script.byte() % held.size();
                // Alone, or with the interrupt decision for the batch it ends.
                const bool decide = script.byte() & 1;
                const uint32_t written = script.word();
                const bool pushed = decide
                                        ? q.push_and_needs_interrupt(held[k], written).has_value()
                                        : q.push(held[k], written).has_value();
                if (!pushed) bug();  // a chain popped and not yet pushed is always accepted
                held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
                break;
            }
            case 3:
                (void)q.needs_interrupt();
                break;
            case 4:
                q.disable_notifications();
                break;
            case 5: {
                auto e = q.enable_notifications();
                if (!e) {
                    expect_broken(q);
                    return 0;
                }
                break;
            }
            case 6: {  // the guest writes concurrently: one byte anywhere in RAM
                const uint16_t at = script.word();
                ram[at % kRamSize] = std::byte{script.byte()};
                break;
            }
            case 7: {  // the device pushes something it does not hold
                DescriptorChain forged;
                forged.clear({script.word(), 1});
                bool holds = false;
                for (const auto& h : held) holds |= h.token().id == forged.token().id;
                auto r = q.push(forged, 0);
                if (holds) {
                    if (!r) bug();
                    for (std::size_t k = 0; k < held.size(); ++k) {
                        if (held[k].token().id == forged.token().id) {
                            held.erase(held.begin() + static_cast<std::ptrdiff_t>(k));
                            break;
                        }
                    }
                } else {
                    if (r || r.error() != QueueError::BadBufferId) bug();
                    expect_broken(q);
                    return 0;
                }
                break;
            }
        }
    }
    // Drain: bounded by the ring, never a hang.
    for (int i = 0; i < 2 * qsize + 2; ++i) {
        auto p = q.pop(chain);
        if (!p) {
            expect_broken(q);
            return 0;
        }
        if (!*p) break;
        check_chain(chain, ram.get());
        held.push_back(chain);
        if (held.size() > qsize) bug();
    }
    for (const auto& h : held) {
        if (!q.push(h, 0)) bug();
    }
    (void)q.needs_interrupt();
    return 0;
}
