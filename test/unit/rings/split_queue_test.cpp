// SPDX-License-Identifier: Apache-2.0
// Split virtqueue engine, driven through the split driver model and activate_queue().
#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "split/split_driver.hpp"
#include "test_memory.hpp"
#include "vfsdax/virtio/queue.hpp"

using namespace vfsdax;
using namespace vfsdax::virtio;
using vfsdax::test::DriverBuffer;
using vfsdax::test::SplitDesc;
using vfsdax::test::SplitDriver;
using vfsdax::test::TestMemory;

namespace {

constexpr uint64_t kVersion1 = feature_bit(VIRTIO_F_VERSION_1);
constexpr uint64_t kEventIdx = feature_bit(VIRTIO_RING_F_EVENT_IDX);
constexpr uint64_t kIndirect = feature_bit(VIRTIO_RING_F_INDIRECT_DESC);

constexpr uint16_t F_NEXT = SplitDriver::kDescF_Next;
constexpr uint16_t F_WRITE = SplitDriver::kDescF_Write;
constexpr uint16_t F_INDIRECT = SplitDriver::kDescF_Indirect;

// The spec's test (2.7.10, virtio_ring.h vring_need_event), written out here on purpose.
bool spec_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}
// The same rule as the spec's prose: some entry written in [old, new) sits at index `event`.
bool spec_entry_hits_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    for (uint16_t i = old_idx; i != new_idx; ++i) {
        if (i == event) return true;
    }
    return false;
}

struct Rig {
    explicit Rig(uint16_t size = 8, uint64_t features = kVersion1, uint64_t ram = 4 << 20)
        : mem(ram), drv(mem, size, features) {
        auto q = activate_queue(drv.config(), mem.memory(), features);
        REQUIRE(q);
        queue = std::move(*q);
    }

    // A pattern-filled readable buffer and a zeroed writable one.
    DriverBuffer readable(uint32_t len, uint8_t seed = 0) {
        DriverBuffer b = drv.alloc_buffer(len);
        for (uint32_t i = 0; i < len; ++i) mem.raw(b.addr)[i] = std::byte(uint8_t(seed + i));
        return b;
    }
    DriverBuffer writable(uint32_t len) { return drv.alloc_buffer(len); }

    QueueError pop_error() {
        auto r = queue->pop(chain);
        REQUIRE_FALSE(r);
        return r.error();
    }
    bool pop() {
        auto r = queue->pop(chain);
        REQUIRE(r);
        return *r;
    }

    TestMemory mem;
    SplitDriver drv;
    std::unique_ptr<Queue> queue;
    DescriptorChain chain;
};

void check_sticky(Queue& q) {
    CHECK(q.broken());
    DescriptorChain c;
    c.clear({0, 1});
    auto p = q.pop(c);
    REQUIRE_FALSE(p);
    CHECK(p.error() == QueueError::Broken);
    auto u = q.push(c, 0);
    REQUIRE_FALSE(u);
    CHECK(u.error() == QueueError::Broken);
    auto n = q.push_and_needs_interrupt(c, 0);
    REQUIRE_FALSE(n);
    CHECK(n.error() == QueueError::Broken);
    auto e = q.enable_notifications();
    REQUIRE_FALSE(e);
    CHECK(e.error() == QueueError::Broken);
    CHECK(q.broken());
}

std::expected<std::unique_ptr<Queue>, QueueError> activate(TestMemory& mem, QueueConfig c,
                                                           uint64_t features = kVersion1) {
    return activate_queue(c, mem.memory(), features);
}

}  // namespace

TEST_CASE("activation checks size, alignment and ring backing") {
    TestMemory mem(1 << 20);
    SplitDriver drv(mem, 8, kVersion1);
    const QueueConfig good = drv.config();
    REQUIRE(activate(mem, good));

    SECTION("not ready, zero size, above max_size") {
        QueueConfig c = good;
        c.ready = false;
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
        c = good;
        c.size = 0;
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
        c = good;
        c.max_size = 4;
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
    }
    SECTION("split size must be a power of two") {
        for (uint16_t size : {3, 6, 12, 100, 1000}) {
            QueueConfig c = good;
            c.size = size;
            CHECK(activate(mem, c).error() == QueueError::BadConfig);
        }
        for (uint16_t size : {1, 2, 4}) {
            QueueConfig c = good;
            c.size = size;
            CHECK(activate(mem, c));
        }
    }
    SECTION("alignment: desc 16, avail 2, used 4") {
        QueueConfig c = good;
        c.desc = GuestAddress(good.desc.raw() + 8);
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
        c = good;
        c.driver = GuestAddress(good.driver.raw() + 1);
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
        c = good;
        c.device = GuestAddress(good.device.raw() + 2);
        CHECK(activate(mem, c).error() == QueueError::BadConfig);
        c = good;
        c.driver = GuestAddress(good.driver.raw() + 2);  // 2-aligned is enough
        c.device = GuestAddress(good.device.raw() + 4);  // 4-aligned is enough
        CHECK(activate(mem, c));
    }
    SECTION("rings must lie in guest memory, wholly") {
        const uint64_t end = mem.base() + mem.size();
        QueueConfig c = good;
        c.desc = GuestAddress(0x1000);
        CHECK(activate(mem, c).error() == QueueError::AddressOutOfRange);
        c = good;
        c.desc = GuestAddress(end - 16 * 8 + 16);  // one descriptor short
        CHECK(activate(mem, c).error() == QueueError::AddressOutOfRange);
        c = good;
        c.driver = GuestAddress(end - (6 + 2 * 8) + 2);  // used_event outside
        CHECK(activate(mem, c).error() == QueueError::AddressOutOfRange);
        c = good;
        c.device = GuestAddress(end - (6 + 8 * 8) + 2);  // avail_event outside
        CHECK(activate(mem, c).error() == QueueError::AddressOutOfRange);
        c = good;
        c.device = GuestAddress(~uint64_t{0} - 31);  // wraps the address space
        CHECK(activate(mem, c).error() == QueueError::AddressOutOfRange);
        c = good;
        c.device = GuestAddress(end - (6 + 8 * 8) - 2);  // exactly at the end: fine
        CHECK(activate(mem, c));
    }
}

TEST_CASE("empty ring pops nothing") {
    Rig r;
    CHECK_FALSE(r.pop());
    CHECK_FALSE(r.queue->needs_interrupt());
    CHECK_FALSE(r.queue->broken());
}

TEST_CASE("a single readable buffer round-trips") {
    Rig r;
    const DriverBuffer b = r.readable(100, 7);
    const std::array<DriverBuffer, 1> rd{b};
    auto head = r.drv.add(rd, {});
    REQUIRE(head);
    r.drv.publish();
    CHECK(r.drv.kick_needed());

    REQUIRE(r.pop());
    CHECK(r.chain.readable().size() == 1);
    CHECK(r.chain.writable().empty());
    CHECK(r.chain.readable_bytes() == 100);
    CHECK(r.chain.readable()[0].data() == r.mem.raw(b.addr));
    std::array<uint8_t, 100> out{};
    ChainReader reader(r.chain);
    REQUIRE(reader.read(out.data(), out.size()));
    CHECK(out[0] == 7);
    CHECK(out[99] == uint8_t(7 + 99));
    CHECK_FALSE(r.pop());

    REQUIRE(r.queue->push(r.chain, 0));
    CHECK(r.queue->needs_interrupt());
    CHECK_FALSE(r.queue->needs_interrupt());  // batch reset
    auto used = r.drv.get_used();
    REQUIRE(used);
    CHECK(used->id == *head);
    CHECK(used->len == 0);
    CHECK_FALSE(r.drv.get_used());
    CHECK(r.drv.num_free() == 8);
}

TEST_CASE("a chain of readable then writable buffers; device writes the reply") {
    Rig r(16);
    const std::array<DriverBuffer, 2> rd{r.readable(10, 1), r.readable(20, 50)};
    const std::array<DriverBuffer, 3> wr{r.writable(4), r.writable(6), r.writable(32)};
    auto head = r.drv.add(rd, wr);
    REQUIRE(head);
    r.drv.publish();

    REQUIRE(r.pop());
    CHECK(r.chain.readable().size() == 2);
    CHECK(r.chain.writable().size() == 3);
    CHECK(r.chain.readable_bytes() == 30);
    CHECK(r.chain.writable_bytes() == 42);
    CHECK(r.chain.token().id == *head);
    ChainReader reader(r.chain);
    std::array<uint8_t, 30> in{};
    REQUIRE(reader.read(in.data(), in.size()));
    CHECK(in[9] == 10);
    CHECK(in[10] == 50);
    ChainWriter writer(r.chain);
    std::array<uint8_t, 12> reply;
    std::iota(reply.begin(), reply.end(), uint8_t{100});
    REQUIRE(writer.write(reply.data(), reply.size()));

    REQUIRE(r.queue->push(r.chain, static_cast<uint32_t>(writer.bytes_written())));
    auto used = r.drv.get_used();
    REQUIRE(used);
    CHECK(used->id == *head);
    CHECK(used->len == 12);
    CHECK(uint8_t(r.mem.raw(wr[0].addr)[0]) == 100);
    CHECK(uint8_t(r.mem.raw(wr[1].addr)[0]) == 104);
    CHECK(uint8_t(r.mem.raw(wr[2].addr)[1]) == 111);
}

TEST_CASE("used len never exceeds the writable bytes") {
    Rig r;
    const std::array<DriverBuffer, 1> wr{r.writable(16)};
    REQUIRE(r.drv.add({}, wr));
    r.drv.publish();
    REQUIRE(r.pop());
    REQUIRE(r.queue->push(r.chain, 1000));
    auto used = r.drv.get_used();
    REQUIRE(used);
    CHECK(used->len == 16);
}

TEST_CASE("a chain may use every descriptor of the table") {
    Rig r(8);
    std::vector<DriverBuffer> rd;
    for (int i = 0; i < 8; ++i) rd.push_back(r.readable(8, uint8_t(i)));
    REQUIRE(r.drv.add(rd, {}));
    r.drv.publish();
    REQUIRE(r.pop());
    CHECK(r.chain.readable().size() == 8);
    CHECK(r.chain.token().ring_slots == 8);
}

TEST_CASE("indirect descriptors") {
    Rig r(4, kVersion1 | kIndirect);
    SECTION("a table holding readable and writable buffers") {
        std::vector<DriverBuffer> rd, wr;
        for (int i = 0; i < 3; ++i) rd.push_back(r.readable(16, uint8_t(i * 16)));
        for (int i = 0; i < 1; ++i) wr.push_back(r.writable(64));
        auto head = r.drv.add_indirect(rd, wr);
        REQUIRE(head);
        r.drv.publish();
        REQUIRE(r.pop());
        CHECK(r.chain.readable().size() == 3);
        CHECK(r.chain.writable().size() == 1);
        CHECK(r.chain.readable_bytes() == 48);
        CHECK(r.chain.writable_bytes() == 64);
        ChainReader reader(r.chain);
        std::array<uint8_t, 48> in{};
        REQUIRE(reader.read(in.data(), in.size()));
        for (int i = 0; i < 48; ++i) CHECK(in[i] == i);
        REQUIRE(r.queue->push(r.chain, 64));
        auto used = r.drv.get_used();
        REQUIRE(used);
        CHECK(used->id == *head);
        CHECK(used->len == 64);
    }
    SECTION("a table may hold up to queue-size buffers") {
        std::vector<DriverBuffer> rd;
        for (int i = 0; i < 4; ++i) rd.push_back(r.readable(8));
        REQUIRE(r.drv.add_indirect(rd, {}));
        r.drv.publish();
        REQUIRE(r.pop());
        CHECK(r.chain.readable().size() == 4);
    }
    SECTION("direct descriptors followed by one indirect (2.7.5.3.2); WRITE on it is ignored") {
        const DriverBuffer a = r.readable(8, 1);
        const DriverBuffer w = r.writable(8);
        const std::array<SplitDesc, 1> table{SplitDesc{w.addr.raw(), 8, F_WRITE, 0}};
        const GuestAddress t = r.drv.write_table(table);
        r.drv.set_desc(0, {a.addr.raw(), 8, F_NEXT, 3});
        r.drv.set_desc(3, {t.raw(), 16, F_INDIRECT | F_WRITE, 0});
        r.drv.publish_raw_head(0);
        REQUIRE(r.pop());
        CHECK(r.chain.readable().size() == 1);
        CHECK(r.chain.writable().size() == 1);
        CHECK(r.chain.token().ring_slots == 2);
    }
    SECTION("chains round after round reuse the tables") {
        for (int round = 0; round < 50; ++round) {
            std::vector<DriverBuffer> rd{r.readable(8)};
            std::vector<DriverBuffer> wr{r.writable(8), r.writable(8)};
            for (int k = 0; k < 4; ++k) REQUIRE(r.drv.add_indirect(rd, wr));
            r.drv.publish();
            for (int k = 0; k < 4; ++k) {
                REQUIRE(r.pop());
                CHECK(r.chain.writable().size() == 2);
                REQUIRE(r.queue->push(r.chain, 3));
            }
            for (int k = 0; k < 4; ++k) REQUIRE(r.drv.get_used());
        }
    }
}

TEST_CASE("indices wrap at 65536, many times over") {
  for (const uint64_t features : {kVersion1, kVersion1 | kEventIdx}) {
    INFO("features " << features);
    Rig r(8, features);
    const std::array<DriverBuffer, 1> rd{r.readable(8)};
    const std::array<DriverBuffer, 1> wr{r.writable(8)};
    std::mt19937 rng(1234);
    uint32_t total = 0;
    uint16_t used_seen = 0;
    while (total < 3 * 65536 + 77) {
        const int batch = 1 + int(rng() % 5);
        std::vector<uint16_t> heads;
        for (int k = 0; k < batch; ++k) {
            auto h = (k % 2) ? r.drv.add(rd, wr) : r.drv.add(rd, {});
            REQUIRE(h);
            heads.push_back(*h);
        }
        r.drv.publish();
        std::vector<DescriptorChain> popped(batch);
        for (int k = 0; k < batch; ++k) {
            auto p = r.queue->pop(popped[k]);
            REQUIRE(p);
            REQUIRE(*p);
            REQUIRE(popped[k].token().id == heads[k]);
        }
        REQUIRE_FALSE(r.pop());
        for (int k = 0; k < batch; ++k) REQUIRE(r.queue->push(popped[k], uint32_t(k)));
        r.queue->needs_interrupt();
        for (int k = 0; k < batch; ++k) {
            auto u = r.drv.get_used();
            REQUIRE(u);
            REQUIRE(u->id == heads[k]);
        }
        used_seen = static_cast<uint16_t>(used_seen + batch);
        total += batch;
        REQUIRE(r.drv.used_idx() == used_seen);
        REQUIRE(r.drv.avail_idx() == used_seen);
    }
    CHECK(r.drv.last_used() == uint16_t(total));
    CHECK_FALSE(r.queue->broken());
  }
}

TEST_CASE("out-of-order completion") {
    Rig r(8);
    std::vector<uint16_t> heads;
    for (int k = 0; k < 6; ++k) {
        const std::array<DriverBuffer, 1> rd{r.readable(8, uint8_t(k))};
        auto h = r.drv.add(rd, {});
        REQUIRE(h);
        heads.push_back(*h);
    }
    CHECK_FALSE(r.drv.add(std::array<DriverBuffer, 3>{r.readable(1), r.readable(1), r.readable(1)}, {}));
    r.drv.publish();
    std::vector<DescriptorChain> chains(3);
    for (auto& c : chains) REQUIRE(*r.queue->pop(c));
    // Complete 2, then 0; 1 stays with the device while more are popped and completed.
    REQUIRE(r.queue->push(chains[2], 0));
    REQUIRE(r.queue->push(chains[0], 0));
    CHECK(r.drv.get_used()->id == heads[2]);
    CHECK(r.drv.get_used()->id == heads[0]);
    CHECK_FALSE(r.drv.get_used());
    // The freed descriptors are reused for a new chain while chain 1 is still in flight.
    auto h = r.drv.add(std::array<DriverBuffer, 3>{r.readable(1), r.readable(1), r.readable(1)}, {});
    REQUIRE(h);
    r.drv.publish();
    std::vector<DescriptorChain> more(4);
    for (auto& c : more) REQUIRE(*r.queue->pop(c));
    CHECK(more[3].token().id == *h);
    CHECK(more[3].readable().size() == 3);
    for (int i = 3; i >= 0; --i) REQUIRE(r.queue->push(more[i], 0));
    REQUIRE(r.queue->push(chains[1], 0));
    CHECK(r.drv.get_used()->id == *h);
    CHECK(r.drv.get_used()->id == heads[5]);
    CHECK(r.drv.get_used()->id == heads[4]);
    CHECK(r.drv.get_used()->id == heads[3]);
    CHECK(r.drv.get_used()->id == heads[1]);
    CHECK(r.drv.num_free() == 8);
}

TEST_CASE("EVENT_IDX: interrupt decisions follow used_event, across the wrap") {
    Rig r(16, kVersion1 | kEventIdx);
    const std::array<DriverBuffer, 1> wr{r.writable(8)};
    std::mt19937 rng(99);
    uint16_t decided_at = 0;  // used->idx at the device's previous decision
    int decisions = 0, interrupts = 0;
    uint32_t pushed_total = 0;
    std::vector<DescriptorChain> held;
    while (pushed_total < 2 * 65536 + 500) {
        // Driver: refill up to the full ring.
        while (r.drv.num_free() > 0) REQUIRE(r.drv.add({}, wr));
        r.drv.publish();
        // Device: pop everything, push a random number of them, decide.
        for (;;) {
            DescriptorChain c;
            auto p = r.queue->pop(c);
            REQUIRE(p);
            if (!*p) break;
            held.push_back(std::move(c));
        }
        std::shuffle(held.begin(), held.end(), rng);
        const std::size_t n = 1 + rng() % held.size();
        for (std::size_t k = 0; k < n; ++k) {
            REQUIRE(r.queue->push(held.back(), 0));
            held.pop_back();
        }
        pushed_total += uint32_t(n);
        // Driver chooses used_event near the current indices (behind, inside, ahead).
        const uint16_t event = static_cast<uint16_t>(decided_at + int(rng() % 40) - 8);
        r.drv.set_used_event(event);
        const uint16_t now = r.drv.used_idx();
        const bool expected = spec_need_event(event, now, decided_at);
        REQUIRE(expected == spec_entry_hits_event(event, now, decided_at));
        REQUIRE(r.queue->needs_interrupt() == expected);
        decisions++;
        interrupts += expected;
        decided_at = now;
        while (r.drv.get_used()) {
        }
        // The flags' lower bit means nothing under EVENT_IDX (the device MUST ignore it).
        r.drv.set_avail_flags(rng() % 2);
    }
    CHECK(decisions > 1000);
    CHECK(interrupts > 100);
    CHECK(interrupts < decisions);
}

TEST_CASE("EVENT_IDX: the spec's examples") {
    Rig r(8, kVersion1 | kEventIdx);
    const std::array<DriverBuffer, 1> wr{r.writable(8)};
    auto one_round = [&](int n) {
        for (int k = 0; k < n; ++k) REQUIRE(r.drv.add({}, wr));
        r.drv.publish();
        std::vector<DescriptorChain> cs(n);
        for (auto& c : cs) REQUIRE(*r.queue->pop(c));
        for (auto& c : cs) REQUIRE(r.queue->push(c, 0));
    };
    // used_event 0: interrupt after the first buffer, not after the next ones.
    r.drv.set_used_event(0);
    one_round(1);
    CHECK(r.queue->needs_interrupt());
    one_round(1);
    CHECK_FALSE(r.queue->needs_interrupt());
    while (r.drv.get_used()) {
    }
    // Linux's get_buf under EVENT_IDX moves used_event to the next entry: the next push signals.
    CHECK(r.drv.used_event() == 2);
    one_round(1);
    CHECK(r.queue->needs_interrupt());
    while (r.drv.get_used()) {
    }
    // Delayed callbacks: 4 in flight, interrupt once 3 of them are used (used_event = 3 + 3).
    for (int k = 0; k < 4; ++k) REQUIRE(r.drv.add({}, wr));
    r.drv.publish();
    CHECK_FALSE(r.drv.enable_interrupts_delayed());
    CHECK(r.drv.used_event() == 6);
    std::vector<DescriptorChain> cs(4);
    for (auto& c : cs) REQUIRE(*r.queue->pop(c));
    REQUIRE(r.queue->push(cs[0], 0));
    REQUIRE(r.queue->push(cs[1], 0));
    REQUIRE(r.queue->push(cs[2], 0));
    CHECK_FALSE(r.queue->needs_interrupt());  // entries 3, 4, 5
    REQUIRE(r.queue->push(cs[3], 0));
    CHECK(r.queue->needs_interrupt());  // entry 6 == used_event
    // The driver turns interrupts off: nothing until used->idx goes all the way round.
    while (r.drv.get_used()) {
    }
    r.drv.disable_interrupts();
    one_round(3);
    CHECK_FALSE(r.queue->needs_interrupt());
    CHECK(r.drv.enable_interrupts());  // entries already pending: the driver polls them
    while (r.drv.get_used()) {
    }
    one_round(1);
    CHECK(r.queue->needs_interrupt());
}

TEST_CASE("EVENT_IDX: more than 65535 pushes between decisions still signal") {
    Rig r(2, kVersion1 | kEventIdx);
    const std::array<DriverBuffer, 1> wr{r.writable(8)};
    r.drv.disable_interrupts();
    for (uint32_t i = 0; i < 65536; ++i) {
        REQUIRE(r.drv.add({}, wr));
        r.drv.publish();
        REQUIRE(r.pop());
        REQUIRE(r.queue->push(r.chain, 0));
        REQUIRE(r.drv.get_used());
    }
    // used->idx is back where the last decision left it: the 16-bit test alone would say no.
    CHECK(r.queue->needs_interrupt());
}

TEST_CASE("EVENT_IDX: avail_event follows the device, kicks follow avail_event") {
    Rig r(8, kVersion1 | kEventIdx);
    const std::array<DriverBuffer, 1> rd{r.readable(8)};
    auto add_publish = [&](int n) {
        for (int k = 0; k < n; ++k) REQUIRE(r.drv.add(rd, {}));
        r.drv.publish();
    };
    // Fresh ring: avail_event 0, so the first buffer kicks.
    add_publish(1);
    CHECK(r.drv.avail_event() == 0);
    CHECK(r.drv.kick_needed());
    REQUIRE(r.pop());
    CHECK(r.drv.avail_event() == 1);  // consumed up to 1: kick when entry 1 is added
    REQUIRE(r.queue->push(r.chain, 0));
    REQUIRE(r.drv.get_used());
    add_publish(2);  // entries 1 and 2; entry 1 == avail_event
    CHECK(spec_need_event(1, 3, 1));
    CHECK(r.drv.kick_needed());
    CHECK_FALSE(r.drv.kick_needed());  // nothing new since
    // The device drains with notifications disabled: avail_event stays put.
    r.queue->disable_notifications();
    CHECK(r.drv.used_flags() == 0);  // the device keeps flags 0 under EVENT_IDX
    std::vector<DescriptorChain> held(2);
    REQUIRE(*r.queue->pop(held[0]));
    REQUIRE(*r.queue->pop(held[1]));
    CHECK(r.drv.avail_event() == 1);
    add_publish(1);  // entry 3; avail_event 1 is behind it: no kick
    CHECK_FALSE(r.drv.kick_needed());
    auto again = r.queue->enable_notifications();
    REQUIRE(again);
    CHECK(*again);  // entry 3 arrived while disabled: pop again
    CHECK(r.drv.avail_event() == 3);
    held.emplace_back();
    REQUIRE(*r.queue->pop(held.back()));
    CHECK(r.drv.avail_event() == 4);
    auto idle = r.queue->enable_notifications();
    REQUIRE(idle);
    CHECK_FALSE(*idle);
    add_publish(1);  // entry 4 == avail_event
    CHECK(r.drv.kick_needed());
    held.emplace_back();
    REQUIRE(*r.queue->pop(held.back()));

    // Random rounds: the driver's decisions against the formula, avail_event against the device.
    std::mt19937 rng(5);
    for (int i = 0; i < 2000; ++i) {
        for (auto& c : held) REQUIRE(r.queue->push(c, 0));
        held.clear();
        while (r.drv.get_used()) {
        }
        const uint16_t before = r.drv.avail_idx();
        const int n = 1 + int(rng() % r.drv.num_free());
        for (int k = 0; k < n; ++k) REQUIRE(r.drv.add(rd, {}));
        r.drv.publish();
        const uint16_t after = r.drv.avail_idx();
        const uint16_t event = r.drv.avail_event();
        REQUIRE(r.drv.kick_needed() == spec_need_event(event, after, before));
        REQUIRE(spec_need_event(event, after, before) == spec_entry_hits_event(event, after, before));
        // The device pops some, sometimes toggling notifications, then drains the rest.
        const int m = int(rng() % (n + 1));
        if (rng() % 2) r.queue->disable_notifications();
        for (int k = 0; k < m; ++k) {
            held.emplace_back();
            REQUIRE(*r.queue->pop(held.back()));
        }
        if (rng() % 2) {
            auto e = r.queue->enable_notifications();
            REQUIRE(e);
            REQUIRE(*e == (m < n));
            REQUIRE(r.drv.avail_event() == uint16_t(before + m));
        }
        for (;;) {
            held.emplace_back();
            auto p = r.queue->pop(held.back());
            REQUIRE(p);
            if (!*p) {
                held.pop_back();
                break;
            }
        }
    }
    CHECK_FALSE(r.queue->broken());
}

TEST_CASE("NO_INTERRUPT and NO_NOTIFY without EVENT_IDX") {
    Rig r(8);
    const std::array<DriverBuffer, 1> rd{r.readable(8)};
    auto round = [&]() {
        REQUIRE(r.drv.add(rd, {}));
        r.drv.publish();
        REQUIRE(r.pop());
        REQUIRE(r.queue->push(r.chain, 0));
    };
    round();
    CHECK(r.queue->needs_interrupt());
    r.drv.disable_interrupts();
    CHECK(r.drv.avail_flags() == 1);
    round();
    CHECK_FALSE(r.queue->needs_interrupt());
    // used_event means nothing without EVENT_IDX.
    r.drv.set_used_event(uint16_t(r.drv.used_idx()));
    round();
    CHECK_FALSE(r.queue->needs_interrupt());
    CHECK(r.drv.enable_interrupts());  // used entries pending
    round();
    CHECK(r.queue->needs_interrupt());
    while (r.drv.get_used()) {
    }

    // Device side: NO_NOTIFY while draining.
    r.queue->disable_notifications();
    CHECK(r.drv.used_flags() == 1);
    REQUIRE(r.drv.add(rd, {}));
    r.drv.publish();
    CHECK_FALSE(r.drv.kick_needed());
    auto e = r.queue->enable_notifications();
    REQUIRE(e);
    CHECK(*e);
    CHECK(r.drv.used_flags() == 0);
    REQUIRE(r.pop());
    e = r.queue->enable_notifications();
    REQUIRE(e);
    CHECK_FALSE(*e);
    REQUIRE(r.drv.add(rd, {}));
    r.drv.publish();
    CHECK(r.drv.kick_needed());
    CHECK(r.drv.avail_event() == 0);  // never written without EVENT_IDX
}

namespace {

// One malformed ring: `forge` writes it through the driver model's raw access and returns the
// error the device must report.
struct Malformed {
    const char* name;
    enum { Any, WithoutIndirect, WithIndirect } when;
    QueueError (*forge)(Rig& r, const DriverBuffer& a, const DriverBuffer& b);
};

void offer(Rig& r, SplitDesc d0) {
    r.drv.set_desc(0, d0);
    r.drv.publish_raw_head(0);
}

uint64_t ram_end(Rig& r) { return r.mem.base() + r.mem.size(); }

GuestAddress good_table(Rig& r, const DriverBuffer& a, const DriverBuffer& b) {
    const std::array<SplitDesc, 2> t{SplitDesc{a.addr.raw(), 16, F_NEXT, 1},
                                     SplitDesc{b.addr.raw(), 16, F_WRITE, 0}};
    return r.drv.write_table(t);
}

using QE = QueueError;
using DB = DriverBuffer;

const Malformed kMalformed[] = {
    {"buffer outside guest memory", Malformed::Any,
     [](Rig& r, const DB&, const DB&) { offer(r, {0x1000, 16, 0, 0}); return QE::AddressOutOfRange; }},
    {"buffer running past the end of guest memory", Malformed::Any,
     [](Rig& r, const DB&, const DB&) {
         offer(r, {ram_end(r) - 8, 16, 0, 0});
         return QE::AddressOutOfRange;
     }},
    {"address + length wraps", Malformed::Any,
     [](Rig& r, const DB&, const DB&) {
         offer(r, {~uint64_t{0} - 7, 16, 0, 0});
         return QE::LengthOverflow;
     }},
    {"zero-length descriptor", Malformed::Any,
     [](Rig& r, const DB& a, const DB& b) {
         r.drv.set_desc(1, {b.addr.raw(), 0, 0, 0});
         offer(r, {a.addr.raw(), 16, F_NEXT, 1});
         return QE::ZeroLength;
     }},
    {"zero-length head", Malformed::Any,
     [](Rig& r, const DB& a, const DB&) {
         offer(r, {a.addr.raw(), 0, 0, 0});
         return QE::ZeroLength;
     }},
    {"loop of two", Malformed::Any,
     [](Rig& r, const DB& a, const DB& b) {
         r.drv.set_desc(1, {b.addr.raw(), 16, F_NEXT, 0});
         offer(r, {a.addr.raw(), 16, F_NEXT, 1});
         return QE::ChainTooLong;
     }},
    {"descriptor pointing at itself", Malformed::Any,
     [](Rig& r, const DB& a, const DB&) {
         offer(r, {a.addr.raw(), 16, F_NEXT, 0});
         return QE::ChainTooLong;
     }},
    {"loop entered late", Malformed::Any,
     [](Rig& r, const DB& a, const DB&) {
         for (uint16_t i = 0; i < 7; ++i) r.drv.set_desc(i, {a.addr.raw(), 16, F_NEXT, uint16_t(i + 1)});
         r.drv.set_desc(7, {a.addr.raw(), 16, F_NEXT, 3});
         r.drv.publish_raw_head(0);
         return QE::ChainTooLong;
     }},
    {"next beyond the table", Malformed::Any,
     [](Rig& r, const DB& a, const DB&) {
         offer(r, {a.addr.raw(), 16, F_NEXT, 8});
         return QE::BadDescriptorIndex;
     }},
    {"head beyond the table", Malformed::Any,
     [](Rig& r, const DB&, const DB&) {
         r.drv.publish_raw_head(8);
         return QE::BadDescriptorIndex;
     }},
    {"readable after writable", Malformed::Any,
     [](Rig& r, const DB& a, const DB& b) {
         r.drv.set_desc(1, {b.addr.raw(), 16, 0, 0});
         offer(r, {a.addr.raw(), 16, F_NEXT | F_WRITE, 1});
         return QE::ReadableAfterWritable;
     }},
    {"avail idx moves by more than the queue size", Malformed::Any,
     [](Rig& r, const DB&, const DB&) {
         r.drv.set_avail_idx(9);
         return QE::BadAvailIndex;
     }},
    {"avail idx moves backwards", Malformed::Any,
     [](Rig& r, const DB&, const DB&) {
         r.drv.set_avail_idx(uint16_t(-1));
         return QE::BadAvailIndex;
     }},
    {"a head already in flight is offered again", Malformed::Any,
     [](Rig& r, const DB& a, const DB&) {
         offer(r, {a.addr.raw(), 16, 0, 0});
         DescriptorChain c;
         auto p = r.queue->pop(c);
         if (!p || !*p) throw std::runtime_error("first pop failed");
         r.drv.publish_raw_head(0);
         return QE::BadBufferId;
     }},
    {"INDIRECT not negotiated", Malformed::WithoutIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         offer(r, {good_table(r, a, b).raw(), 32, F_INDIRECT, 0});
         return QE::BadIndirectTable;
     }},
    {"indirect table of length 0", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         offer(r, {good_table(r, a, b).raw(), 0, F_INDIRECT, 0});
         return QE::BadIndirectTable;
     }},
    {"indirect table length not a multiple of 16", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         offer(r, {good_table(r, a, b).raw(), 24, F_INDIRECT, 0});
         return QE::BadIndirectTable;
     }},
    {"INDIRECT and NEXT together", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         r.drv.set_desc(1, {b.addr.raw(), 16, 0, 0});
         offer(r, {good_table(r, a, b).raw(), 32, F_INDIRECT | F_NEXT, 1});
         return QE::BadIndirectTable;
     }},
    {"indirect table outside guest memory", Malformed::WithIndirect,
     [](Rig& r, const DB&, const DB&) {
         offer(r, {ram_end(r) - 16, 32, F_INDIRECT, 0});
         return QE::AddressOutOfRange;
     }},
    {"indirect table address + length wraps", Malformed::WithIndirect,
     [](Rig& r, const DB&, const DB&) {
         offer(r, {~uint64_t{0} - 15, 32, F_INDIRECT, 0});
         return QE::LengthOverflow;
     }},
    {"nested indirect", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         const std::array<SplitDesc, 1> nested{SplitDesc{good_table(r, a, b).raw(), 32, F_INDIRECT, 0}};
         offer(r, {r.drv.write_table(nested).raw(), 16, F_INDIRECT, 0});
         return QE::NestedIndirect;
     }},
    {"next beyond the indirect table", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         const std::array<SplitDesc, 2> bad{SplitDesc{a.addr.raw(), 16, F_NEXT, 2},
                                            SplitDesc{b.addr.raw(), 16, 0, 0}};
         offer(r, {r.drv.write_table(bad).raw(), 32, F_INDIRECT, 0});
         return QE::BadDescriptorIndex;
     }},
    {"loop inside the indirect table", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         const std::array<SplitDesc, 2> bad{SplitDesc{a.addr.raw(), 16, F_NEXT, 1},
                                            SplitDesc{b.addr.raw(), 16, F_NEXT, 0}};
         offer(r, {r.drv.write_table(bad).raw(), 32, F_INDIRECT, 0});
         return QE::ChainTooLong;
     }},
    {"indirect table with more buffers than the queue size", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB&) {
         std::vector<SplitDesc> big;
         for (uint16_t i = 0; i < 9; ++i) big.push_back({a.addr.raw(), 16, F_NEXT, uint16_t(i + 1)});
         big.back().flags = 0;
         offer(r, {r.drv.write_table(big).raw(), 16 * 9, F_INDIRECT, 0});
         return QE::ChainTooLong;
     }},
    {"direct part plus indirect table longer than the queue size", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB&) {
         std::vector<SplitDesc> big;
         for (uint16_t i = 0; i < 7; ++i) big.push_back({a.addr.raw(), 16, F_NEXT, uint16_t(i + 1)});
         big.back().flags = 0;
         r.drv.set_desc(1, {r.drv.write_table(big).raw(), 16 * 7, F_INDIRECT, 0});
         r.drv.set_desc(2, {a.addr.raw(), 16, F_NEXT, 1});
         offer(r, {a.addr.raw(), 16, F_NEXT, 2});
         return QE::ChainTooLong;
     }},
    {"zero length inside the indirect table", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB&) {
         const std::array<SplitDesc, 1> bad{SplitDesc{a.addr.raw(), 0, 0, 0}};
         offer(r, {r.drv.write_table(bad).raw(), 16, F_INDIRECT, 0});
         return QE::ZeroLength;
     }},
    {"readable in the table after a writable direct descriptor", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         r.drv.set_desc(1, {good_table(r, a, b).raw(), 32, F_INDIRECT, 0});
         offer(r, {b.addr.raw(), 16, F_WRITE | F_NEXT, 1});
         return QE::ReadableAfterWritable;
     }},
    {"readable after writable inside the table", Malformed::WithIndirect,
     [](Rig& r, const DB& a, const DB& b) {
         const std::array<SplitDesc, 2> bad{SplitDesc{b.addr.raw(), 16, F_NEXT | F_WRITE, 1},
                                            SplitDesc{a.addr.raw(), 16, 0, 0}};
         offer(r, {r.drv.write_table(bad).raw(), 32, F_INDIRECT, 0});
         return QE::ReadableAfterWritable;
     }},
    {"buffer in the indirect table outside guest memory", Malformed::WithIndirect,
     [](Rig& r, const DB&, const DB&) {
         const std::array<SplitDesc, 1> bad{SplitDesc{0x10, 16, 0, 0}};
         offer(r, {r.drv.write_table(bad).raw(), 16, F_INDIRECT, 0});
         return QE::AddressOutOfRange;
     }},
};

}  // namespace

TEST_CASE("malformed chains break the queue, for good") {
    int checked = 0;
    for (const uint64_t features : {kVersion1, kVersion1 | kIndirect | kEventIdx}) {
        const bool indirect = features & kIndirect;
        for (const Malformed& m : kMalformed) {
            if ((m.when == Malformed::WithIndirect && !indirect) ||
                (m.when == Malformed::WithoutIndirect && indirect)) {
                continue;
            }
            INFO(m.name << (indirect ? " (INDIRECT_DESC, EVENT_IDX)" : ""));
            Rig r(8, features);
            const DriverBuffer a = r.readable(16);
            const DriverBuffer b = r.readable(16);
            const QueueError expected = m.forge(r, a, b);
            auto p = r.queue->pop(r.chain);
            REQUIRE_FALSE(p);
            CHECK(p.error() == expected);
            check_sticky(*r.queue);
            // A later valid buffer does not revive it.
            r.drv.set_desc(5, {a.addr.raw(), 16, 0, 0});
            r.drv.publish_raw_head(5);
            auto again = r.queue->pop(r.chain);
            REQUIRE_FALSE(again);
            CHECK(again.error() == QueueError::Broken);
            CHECK_FALSE(r.queue->needs_interrupt());
            ++checked;
        }
    }
    CHECK(checked == 2 * 14 + 1 + 14);  // every case ran
}

TEST_CASE("a well-formed indirect table next to the malformed ones pops") {
    Rig r(8, kVersion1 | kIndirect);
    const DriverBuffer a = r.readable(16);
    const DriverBuffer b = r.readable(16);
    offer(r, {good_table(r, a, b).raw(), 32, F_INDIRECT, 0});
    REQUIRE(r.pop());
    CHECK(r.chain.readable().size() == 1);
    CHECK(r.chain.writable().size() == 1);
}

TEST_CASE("enable_notifications sees a bad avail index too") {
    Rig r(8);
    r.drv.set_avail_idx(100);
    auto e = r.queue->enable_notifications();
    REQUIRE_FALSE(e);
    CHECK(e.error() == QueueError::BadAvailIndex);
    check_sticky(*r.queue);
}

TEST_CASE("push of a chain that is not in flight") {
    Rig r(8);
    const std::array<DriverBuffer, 1> rd{r.readable(8)};
    REQUIRE(r.drv.add(rd, {}));
    r.drv.publish();
    REQUIRE(r.pop());
    SECTION("pushed twice") {
        REQUIRE(r.queue->push(r.chain, 0));
        auto again = r.queue->push(r.chain, 0);
        REQUIRE_FALSE(again);
        CHECK(again.error() == QueueError::BadBufferId);
    }
    SECTION("never popped") {
        DescriptorChain other;
        other.clear({3, 1});
        auto u = r.queue->push(other, 0);
        REQUIRE_FALSE(u);
        CHECK(u.error() == QueueError::BadBufferId);
    }
    SECTION("id beyond the queue") {
        DescriptorChain other;
        other.clear({200, 1});
        auto u = r.queue->push(other, 0);
        REQUIRE_FALSE(u);
        CHECK(u.error() == QueueError::BadBufferId);
    }
    SECTION("pushed twice, the second time with the interrupt decision") {
        REQUIRE(r.queue->push_and_needs_interrupt(r.chain, 0));
        auto again = r.queue->push_and_needs_interrupt(r.chain, 0);
        REQUIRE_FALSE(again);
        CHECK(again.error() == QueueError::BadBufferId);
    }
    check_sticky(*r.queue);
}

TEST_CASE("push_and_needs_interrupt decides for the whole batch, as push and needs_interrupt") {
    Rig r(8, kVersion1 | kEventIdx);
    const std::array<DriverBuffer, 1> wr{r.writable(8)};
    for (int k = 0; k < 4; ++k) REQUIRE(r.drv.add({}, wr));
    r.drv.publish();
    std::vector<DescriptorChain> cs(4);
    for (auto& c : cs) REQUIRE(*r.queue->pop(c));
    // used_event 1: the second used entry asks for an interrupt; the batch of 0..2 covers it.
    r.drv.set_used_event(1);
    REQUIRE(r.queue->push(cs[0], 0));
    REQUIRE(r.queue->push(cs[1], 0));
    auto last = r.queue->push_and_needs_interrupt(cs[2], 5);
    REQUIRE(last);
    CHECK(*last);
    CHECK_FALSE(r.queue->needs_interrupt());  // the batch was reset
    // The next one is past used_event: no interrupt, and the element is in the used ring.
    auto next = r.queue->push_and_needs_interrupt(cs[3], 0);
    REQUIRE(next);
    CHECK_FALSE(*next);
    int used = 0;
    while (r.drv.get_used()) ++used;
    CHECK(used == 4);
}

TEST_CASE("a chain of more than 2^32 - 1 bytes") {
    // Guest RAM for the rings plus a huge, never-touched region for the buffers: translation is
    // arithmetic, so address space reserved PROT_NONE is enough.
    TestMemory ram(1 << 20);
    constexpr uint64_t kHuge = uint64_t{8} << 30;
    void* reserve = mmap(nullptr, kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(reserve != MAP_FAILED);
    struct Unmap {
        void* p;
        ~Unmap() { munmap(p, kHuge); }
    } unmap{reserve};
    const uint64_t big = uint64_t{1} << 40;
    REQUIRE(ram.memory().add_region(GuestAddress(big), kHuge, reserve));
    SplitDriver drv(ram, 8, kVersion1);
    auto q = activate_queue(drv.config(), ram.memory(), kVersion1);
    REQUIRE(q);
    drv.set_desc(0, {big, 0xffffffffu, F_NEXT, 1});
    drv.set_desc(1, {big, 0xffffffffu, 0, 0});
    drv.publish_raw_head(0);
    DescriptorChain c;
    SECTION("two 4 GiB - 1 buffers") {
        auto p = (*q)->pop(c);
        REQUIRE_FALSE(p);
        CHECK(p.error() == QueueError::LengthOverflow);
        check_sticky(**q);
    }
    SECTION("one 4 GiB - 1 buffer is fine") {
        drv.set_desc(0, {big, 0xffffffffu, 0, 0});
        auto p = (*q)->pop(c);
        REQUIRE(p);
        CHECK(*p);
        CHECK(c.readable_bytes() == 0xffffffffu);
    }
}

TEST_CASE("a popped chain keeps what was checked when the guest rewrites the descriptor") {
    Rig r(8);
    const DriverBuffer a = r.readable(16);
    const std::array<DriverBuffer, 1> rd{a};
    REQUIRE(r.drv.add(rd, {}));
    r.drv.publish();
    REQUIRE(r.pop());
    r.drv.set_desc(0, {0xdead0000, 0x7fffffff, F_WRITE | F_NEXT, 7});
    CHECK(r.chain.readable().size() == 1);
    CHECK(r.chain.readable()[0].size() == 16);
    CHECK(r.chain.readable()[0].data() == r.mem.raw(a.addr));
    REQUIRE(r.queue->push(r.chain, 0));
    CHECK(r.drv.get_used()->id == 0);
}

TEST_CASE("driver and device on two threads: no lost kick, no lost interrupt") {
    for (const uint64_t features : {kVersion1, kVersion1 | kEventIdx}) {
        INFO("features " << features);
        Rig r(16, features, 8 << 20);
        constexpr uint32_t kChains = 100000;
        std::atomic<bool> kick{false}, irq{false}, stop{false};
        std::atomic<uint32_t> kicks{0}, irqs{0};
        // The device sleeps until kicked, drains with notifications off, then re-enables them
        // and pops again when enable_notifications() says buffers slipped in meanwhile.
        std::thread device([&] {
            DescriptorChain c;
            while (!stop.load()) {
                if (!kick.exchange(false)) {
                    std::this_thread::yield();
                    continue;
                }
                for (;;) {
                    r.queue->disable_notifications();
                    for (;;) {
                        auto p = r.queue->pop(c);
                        if (!p || !*p) break;
                        uint32_t v = 0;
                        ChainReader reader(c);
                        (void)reader.read(&v, 4);
                        ++v;
                        ChainWriter writer(c);
                        (void)writer.write(&v, 4);
                        (void)r.queue->push(c, static_cast<uint32_t>(writer.bytes_written()));
                        if (r.queue->needs_interrupt()) {
                            irqs.fetch_add(1);
                            irq.store(true);
                        }
                    }
                    auto again = r.queue->enable_notifications();
                    if (!again || !*again) break;
                }
            }
        });
        // The driver: one fresh pair of buffers per chain (a value in, value + 1 back).
        struct Sent {
            uint32_t value;
            GuestAddress reply;
        };
        std::vector<Sent> sent(16);
        uint32_t submitted = 0, completed = 0;
        bool bad_reply = false;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (completed < kChains && std::chrono::steady_clock::now() < deadline) {
            while (auto u = r.drv.get_used()) {
                uint32_t v;
                std::memcpy(&v, r.mem.raw(sent[u->id].reply, 4), 4);
                bad_reply |= u->len != 4 || v != sent[u->id].value + 1;
                ++completed;
            }
            bool added = false;
            while (submitted < kChains && r.drv.num_free() >= 2) {
                const DriverBuffer in = r.drv.alloc_buffer(4);
                const DriverBuffer out = r.drv.alloc_buffer(4);
                std::memcpy(r.mem.raw(in.addr, 4), &submitted, 4);
                auto head = r.drv.add(std::array<DriverBuffer, 1>{in}, std::array<DriverBuffer, 1>{out});
                if (!head) break;
                sent[*head] = {submitted, out.addr};
                ++submitted;
                added = true;
            }
            if (added) {
                r.drv.publish();
                if (r.drv.kick_needed()) {
                    kicks.fetch_add(1);
                    kick.store(true);
                }
            }
            // Nothing new used: arm the interrupt, and sleep until it fires unless enabling
            // shows used entries already there.
            if (r.drv.in_flight() > 0 && r.drv.used_idx() == r.drv.last_used() &&
                !r.drv.enable_interrupts()) {
                while (!irq.exchange(false) && std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::yield();
                }
            }
        }
        stop.store(true);
        device.join();
        CHECK(completed == kChains);  // a lost kick or interrupt stalls until the deadline
        CHECK_FALSE(bad_reply);
        CHECK_FALSE(r.queue->broken());
        CHECK(kicks.load() > 0);
        CHECK(irqs.load() > 0);
    }
}

TEST_CASE("describe() tells what is waiting, popped and in flight") {
    Rig r(8, kVersion1 | kEventIdx);
    const DriverBuffer a = r.readable(16), b = r.readable(16), c = r.readable(16);
    for (const DriverBuffer& buffer : {a, b, c}) REQUIRE(r.drv.add(std::span(&buffer, 1), {}));
    r.drv.publish();
    r.drv.set_used_event(5);
    CHECK(r.queue->describe() ==
          "split ring of 8: avail idx 3 (3 not popped), 0 popped, used idx 0 (0 in flight), "
          "avail flags 0x0, used_event 5, kicks on");

    REQUIRE(r.pop());
    DescriptorChain second;
    REQUIRE(r.queue->pop(second));
    REQUIRE(r.queue->push(r.chain, 0));
    r.queue->disable_notifications();
    CHECK(r.queue->describe() ==
          "split ring of 8: avail idx 3 (1 not popped), 2 popped, used idx 1 (1 in flight), "
          "avail flags 0x0, used_event 5, kicks off");
}
