// SPDX-License-Identifier: Apache-2.0
// PackedQueue through activate_queue() and the independent packed driver model (virtio 1.2, 2.8):
// buffers, chains, indirect tables, wrap counters, out-of-order completion, both event
// suppression areas, every malformed ring the device must refuse, and the sticky broken state.
#include <sys/mman.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <semaphore>
#include <thread>
#include <vector>

#include "packed/packed_driver.hpp"
#include "test_memory.hpp"
#include "vfsdax/virtio/queue.hpp"
#include "vfsdax/virtio/spec.hpp"

using namespace vfsdax;
using namespace vfsdax::virtio;
using namespace vfsdax::test;

namespace {

constexpr uint64_t kIndirect = feature_bit(VIRTIO_RING_F_INDIRECT_DESC);
constexpr uint64_t kEventIdx = feature_bit(VIRTIO_RING_F_EVENT_IDX);
constexpr uint16_t kNext = PackedDriver::kDescF_Next;
constexpr uint16_t kWrite = PackedDriver::kDescF_Write;
constexpr uint16_t kInd = PackedDriver::kDescF_Indirect;

// A driver and the device queue activated from its config.
struct Rig {
    TestMemory mem;
    PackedDriver drv;
    std::unique_ptr<Queue> q;

    explicit Rig(uint16_t size, uint64_t features = 0, uint64_t mem_size = 1 << 20)
        : mem(mem_size), drv(mem, size, features) {
        auto r = activate_queue(drv.config(), mem.memory(), drv.features());
        REQUIRE(r.has_value());
        q = std::move(*r);
    }

    DescriptorChain pop_one() {
        DescriptorChain c;
        auto r = q->pop(c);
        REQUIRE(r.has_value());
        REQUIRE(*r);
        return c;
    }
    bool pop_none() {
        DescriptorChain c;
        auto r = q->pop(c);
        return r.has_value() && !*r;
    }
    // A readable and a writable buffer of `len` bytes each, as a chain of two.
    uint16_t add_pair(uint32_t len = 64) {
        const DriverBuffer r = drv.alloc_buffer(len), w = drv.alloc_buffer(len);
        auto id = drv.add(std::span(&r, 1), std::span(&w, 1));
        REQUIRE(id.has_value());
        drv.publish();
        return *id;
    }
    // The error pop() reports for whatever the driver forged.
    QueueError pop_error() {
        DescriptorChain c;
        auto r = q->pop(c);
        REQUIRE(!r.has_value());
        return r.error();
    }
};

// Every call after a failure says Broken, and nothing else happens.
void check_sticky(Queue& q) {
    CHECK(q.broken());
    DescriptorChain c;
    auto p = q.pop(c);
    REQUIRE(!p.has_value());
    CHECK(p.error() == QueueError::Broken);
    c.clear({0, 1});
    auto u = q.push(c, 0);
    REQUIRE(!u.has_value());
    CHECK(u.error() == QueueError::Broken);
    auto n = q.push_and_needs_interrupt(c, 0);
    REQUIRE(!n.has_value());
    CHECK(n.error() == QueueError::Broken);
    auto e = q.enable_notifications();
    REQUIRE(!e.has_value());
    CHECK(e.error() == QueueError::Broken);
    q.disable_notifications();
    CHECK_FALSE(q.needs_interrupt());
}

void check_segments(TestMemory& mem, std::span<const Segment> segs,
                    std::span<const DriverBuffer> bufs) {
    REQUIRE(segs.size() == bufs.size());
    for (std::size_t i = 0; i < segs.size(); ++i) {
        CHECK(segs[i].data() == mem.raw(bufs[i].addr, bufs[i].len));
        CHECK(segs[i].size() == bufs[i].len);
    }
}

QueueError activation_error(const QueueConfig& c, TestMemory& mem, uint64_t features) {
    auto r = activate_queue(c, mem.memory(), features | feature_bit(VIRTIO_F_RING_PACKED));
    REQUIRE(!r.has_value());
    return r.error();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Activation

TEST_CASE("packed: activation checks size, alignment and backing of the three areas") {
    TestMemory mem(1 << 20);
    PackedDriver drv(mem, 8, 0);
    const QueueConfig good = drv.config();
    REQUIRE(activate_queue(good, mem.memory(), drv.features()).has_value());

    QueueConfig c = good;
    c.ready = false;
    CHECK(activation_error(c, mem, 0) == QueueError::BadConfig);
    c = good;
    c.max_size = 65535;
    c.size = 32769;  // packed rings hold at most 2^15 entries
    CHECK(activation_error(c, mem, 0) == QueueError::BadConfig);
    c = good;
    c.desc = GuestAddress(good.desc.raw() + 8);  // the ring needs 16
    CHECK(activation_error(c, mem, 0) == QueueError::BadConfig);
    c = good;
    c.driver = GuestAddress(good.driver.raw() + 2);  // event areas need 4
    CHECK(activation_error(c, mem, 0) == QueueError::BadConfig);
    c = good;
    c.device = GuestAddress(good.device.raw() + 1);
    CHECK(activation_error(c, mem, 0) == QueueError::BadConfig);
    c = good;
    c.desc = GuestAddress(mem.base() + mem.size() - 16 * 8 + 16);  // runs past the end of RAM
    CHECK(activation_error(c, mem, 0) == QueueError::AddressOutOfRange);
    c = good;
    c.driver = GuestAddress(0x1000);  // below RAM
    CHECK(activation_error(c, mem, 0) == QueueError::AddressOutOfRange);
    c = good;
    c.device = GuestAddress(~uint64_t{3});  // wraps the address space
    CHECK(activation_error(c, mem, 0) == QueueError::AddressOutOfRange);
}

TEST_CASE("packed: any size from 1 to 32768 activates, powers of two or not") {
    TestMemory mem(1 << 20);
    for (uint16_t size : {1, 2, 3, 7, 100, 255, 1000, 32768}) {
        PackedDriver drv(mem, size, kIndirect | kEventIdx);
        auto q = activate_queue(drv.config(), mem.memory(), drv.features());
        REQUIRE(q.has_value());
        CHECK((*q)->size() == size);
        CHECK_FALSE((*q)->broken());
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers

TEST_CASE("packed: one readable buffer, popped once, returned to the driver") {
    Rig rig(8);
    CHECK(rig.pop_none());
    const DriverBuffer b = rig.drv.alloc_buffer(100);
    auto id = rig.drv.add(std::span(&b, 1), {});
    REQUIRE(id);
    CHECK(rig.pop_none());  // not published yet
    rig.drv.publish();
    DescriptorChain c = rig.pop_one();
    check_segments(rig.mem, c.readable(), std::span(&b, 1));
    CHECK(c.writable().empty());
    CHECK(c.readable_bytes() == 100);
    CHECK(c.token().id == *id);
    CHECK(c.token().ring_slots == 1);
    CHECK(rig.pop_none());
    CHECK_FALSE(rig.drv.get_used());
    REQUIRE(rig.q->push(c, 0));
    auto used = rig.drv.get_used();
    REQUIRE(used);
    CHECK(used->id == *id);
    CHECK_FALSE(used->written);
    CHECK(used->len == 0);
    CHECK(rig.drv.num_free() == 8);
}

TEST_CASE("packed: a chain of readable then writable buffers carries data both ways") {
    Rig rig(8);
    const DriverBuffer r[2] = {rig.drv.alloc_buffer(3), rig.drv.alloc_buffer(16)};
    const DriverBuffer w[3] = {rig.drv.alloc_buffer(5), rig.drv.alloc_buffer(7),
                               rig.drv.alloc_buffer(9)};
    for (int i = 0; i < 3; ++i)
        rig.mem.store<uint8_t>(GuestAddress(r[0].addr.raw() + i), uint8_t(i));
    for (int i = 0; i < 16; ++i)
        rig.mem.store<uint8_t>(GuestAddress(r[1].addr.raw() + i), uint8_t(3 + i));
    auto id = rig.drv.add(r, w);
    REQUIRE(id);
    rig.drv.publish();
    DescriptorChain c = rig.pop_one();
    check_segments(rig.mem, c.readable(), r);
    check_segments(rig.mem, c.writable(), w);
    CHECK(c.token().ring_slots == 5);
    CHECK(c.token().id == *id);

    ChainReader reader(c);
    uint8_t in[19];
    REQUIRE(reader.read(in, sizeof in));
    for (int i = 0; i < 19; ++i) CHECK(in[i] == i);
    ChainWriter writer(c);
    uint8_t out[13];
    for (int i = 0; i < 13; ++i) out[i] = uint8_t(100 + i);
    REQUIRE(writer.write(out, sizeof out));
    REQUIRE(rig.q->push(c, static_cast<uint32_t>(writer.bytes_written())));

    auto used = rig.drv.get_used();
    REQUIRE(used);
    CHECK(used->id == *id);
    CHECK(used->written);
    CHECK(used->len == 13);
    CHECK(rig.mem.load<uint8_t>(w[0].addr) == 100);
    CHECK(rig.mem.load<uint8_t>(GuestAddress(w[1].addr.raw() + 6)) == 111);
    CHECK(rig.mem.load<uint8_t>(GuestAddress(w[2].addr.raw())) == 112);
    // The next buffer starts after the five slots the chain took.
    CHECK(rig.drv.next_avail() == 5);
    CHECK(rig.drv.last_used() == 5);
}

TEST_CASE("packed: the device never reports more written bytes than the writable part") {
    Rig rig(4);
    rig.add_pair(32);
    DescriptorChain c = rig.pop_one();
    REQUIRE(rig.q->push(c, 1000));
    auto used = rig.drv.get_used();  // throws DeviceBug past the writable part
    REQUIRE(used);
    CHECK(used->len == 32);
}

TEST_CASE("packed: the buffer id comes from the last descriptor of the list") {
    Rig rig(8);
    const DriverBuffer a = rig.drv.alloc_buffer(8), b = rig.drv.alloc_buffer(8);
    const PackedDesc list[2] = {{a.addr.raw(), 8, 5, kNext}, {b.addr.raw(), 8, 2, kWrite}};
    rig.drv.forge(list);
    DescriptorChain c = rig.pop_one();
    CHECK(c.token().id == 2);
    CHECK(c.token().ring_slots == 2);
    REQUIRE(rig.q->push(c, 4));
    // The used element overwrote the first slot of the list: id, len, AVAIL = USED = 1, WRITE.
    const PackedDesc used = rig.drv.desc(0);
    CHECK(used.id == 2);
    CHECK(used.len == 4);
    CHECK(used.flags == (PackedDriver::kDescF_Avail | PackedDriver::kDescF_Used | kWrite));
}

TEST_CASE("packed: used elements carry the device wrap counter, and WRITE only with data") {
    Rig rig(3);
    for (int round = 0; round < 4; ++round) {
        const bool wrap = round % 2 == 0;  // the device's counter starts at 1
        for (uint16_t slot = 0; slot < 3; ++slot) {
            const DriverBuffer w = rig.drv.alloc_buffer(16);
            REQUIRE(rig.drv.add({}, std::span(&w, 1)));
            rig.drv.publish();
            DescriptorChain c = rig.pop_one();
            const uint32_t written = slot == 1 ? 0 : 10 + slot;
            REQUIRE(rig.q->push(c, written));
            const PackedDesc d = rig.drv.desc(slot);
            const uint16_t wrap_bits =
                wrap ? PackedDriver::kDescF_Avail | PackedDriver::kDescF_Used : 0;
            CHECK(d.flags == (wrap_bits | (written ? kWrite : 0)));
            CHECK(d.id == c.token().id);
            CHECK(d.len == written);
            auto used = rig.drv.get_used();
            REQUIRE(used);
            CHECK(used->written == (written != 0));
        }
    }
}

TEST_CASE("packed: indirect tables hold the whole list in one ring slot") {
    Rig rig(4, kIndirect);
    const DriverBuffer r[2] = {rig.drv.alloc_buffer(4), rig.drv.alloc_buffer(12)};
    const DriverBuffer w[2] = {rig.drv.alloc_buffer(8), rig.drv.alloc_buffer(8)};
    rig.mem.store<uint32_t>(r[0].addr, 0xdeadbeef);
    auto id = rig.drv.add_indirect(r, w);
    REQUIRE(id);
    const DriverBuffer single = rig.drv.alloc_buffer(4);
    auto id2 = rig.drv.add(std::span(&single, 1), {});
    REQUIRE(id2);
    rig.drv.publish();
    DescriptorChain c = rig.pop_one();
    check_segments(rig.mem, c.readable(), r);
    check_segments(rig.mem, c.writable(), w);
    CHECK(c.token().id == *id);
    CHECK(c.token().ring_slots == 1);
    ChainReader reader(c);
    CHECK(reader.read_object<uint32_t>().value() == 0xdeadbeef);
    DescriptorChain c2 = rig.pop_one();  // right after the indirect descriptor
    CHECK(c2.token().id == *id2);
    REQUIRE(rig.q->push(c2, 0));
    REQUIRE(rig.q->push(c, 16));
    auto u1 = rig.drv.get_used();
    auto u2 = rig.drv.get_used();
    REQUIRE(u1);
    REQUIRE(u2);
    CHECK(u1->id == *id2);
    CHECK(u2->id == *id);
    CHECK(u2->len == 16);
    CHECK(rig.drv.num_free() == 4);
}

TEST_CASE("packed: inside an indirect table only WRITE counts; NEXT and ids are ignored") {
    // 2.8.7: WRITE is the only valid flag in the table, the others are reserved and ignored,
    // and so is the buffer id; WRITE on the descriptor pointing to the table is ignored too.
    Rig rig(4, kIndirect);
    const DriverBuffer a = rig.drv.alloc_buffer(8), b = rig.drv.alloc_buffer(8),
                       d = rig.drv.alloc_buffer(8);
    const PackedDesc table[3] = {{a.addr.raw(), 8, 77, kNext},
                                 {b.addr.raw(), 8, 1234, 0},
                                 {d.addr.raw(), 8, 0xffff, kWrite | kNext}};
    const GuestAddress t = rig.drv.write_table(table);
    const PackedDesc pointer{t.raw(), 48, 3, kInd | kWrite};
    rig.drv.forge(std::span(&pointer, 1));
    DescriptorChain c = rig.pop_one();
    CHECK(c.token().id == 3);
    CHECK(c.readable().size() == 2);
    CHECK(c.writable().size() == 1);
    CHECK(c.writable()[0].data() == rig.mem.raw(d.addr, 8));
}

TEST_CASE("packed: a list may take every slot of the ring, across its end") {
    Rig rig(5);
    // Move to slot 3 first, so the list of 5 wraps.
    for (int i = 0; i < 3; ++i) {
        const DriverBuffer b = rig.drv.alloc_buffer(8);
        REQUIRE(rig.drv.add(std::span(&b, 1), {}));
        rig.drv.publish();
        REQUIRE(rig.q->push(rig.pop_one(), 0));
        REQUIRE(rig.drv.get_used());
    }
    std::vector<DriverBuffer> bufs;
    for (int i = 0; i < 5; ++i) bufs.push_back(rig.drv.alloc_buffer(8));
    auto id = rig.drv.add(std::span(bufs).first(2), std::span(bufs).subspan(2));
    REQUIRE(id);
    CHECK_FALSE(rig.drv.add(std::span(bufs).first(1), {}));  // ring full
    rig.drv.publish();
    DescriptorChain c = rig.pop_one();
    CHECK(c.token().ring_slots == 5);
    check_segments(rig.mem, c.readable(), std::span(bufs).first(2));
    check_segments(rig.mem, c.writable(), std::span(bufs).subspan(2));
    CHECK(rig.pop_none());
    REQUIRE(rig.q->push(c, 1));
    auto used = rig.drv.get_used();
    REQUIRE(used);
    CHECK(used->id == *id);
    CHECK(rig.drv.last_used() == 3);
    CHECK(rig.drv.used_wrap() == false);
}

// ---------------------------------------------------------------------------------------------
// Wrap counters and out-of-order completion, checked buffer by buffer.

namespace {

struct Expected {
    std::vector<DriverBuffer> readable, writable;
    DescriptorChain chain;
};

// Runs `steps` random steps: the driver adds lists of random shape (direct or indirect), the
// device pops and completes them in random order, the driver collects. Every popped chain must
// match what the driver added under that id, every used element what the device returned.
void random_traffic(uint16_t size, uint64_t features, int steps, uint32_t seed,
                    int* wraps_out = nullptr) {
    Rig rig(size, features, 4 << 20);
    std::mt19937 rng(seed);
    const auto uniform = [&](int lo, int hi) {
        return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    std::vector<DriverBuffer> pool;  // reusable guest buffers
    for (int i = 0; i < 64; ++i)
        pool.push_back(rig.drv.alloc_buffer(static_cast<uint32_t>(1 + i * 3)));
    std::map<uint16_t, Expected> added;       // by id, not yet popped or not yet used
    std::vector<uint16_t> popped;             // in flight at the device
    std::map<uint16_t, uint32_t> pushed_len;  // pushed, not yet collected
    int wraps = 0;
    bool last_wrap = rig.drv.avail_wrap();
    uint64_t popped_total = 0, collected_total = 0;

    for (int step = 0; step < steps; ++step) {
        const int action = uniform(0, 9);
        if (action < 4) {
            const int n = uniform(1, std::min<int>(size, 6));
            const int nr = uniform(0, n);
            Expected e;
            for (int i = 0; i < n; ++i)
                (i < nr ? e.readable : e.writable).push_back(pool[uniform(0, 63)]);
            const bool indirect = (features & kIndirect) && uniform(0, 2) == 0;
            auto id = indirect ? rig.drv.add_indirect(e.readable, e.writable)
                               : rig.drv.add(e.readable, e.writable);
            if (id) {
                REQUIRE(added.count(*id) == 0);
                added[*id] = std::move(e);
            }
            if (uniform(0, 1)) rig.drv.publish();
        } else if (action < 7) {
            DescriptorChain c;
            auto r = rig.q->pop(c);
            REQUIRE(r.has_value());
            if (*r) {
                ++popped_total;
                const uint16_t id = c.token().id;
                REQUIRE(added.count(id) == 1);
                Expected& e = added[id];
                check_segments(rig.mem, c.readable(), e.readable);
                check_segments(rig.mem, c.writable(), e.writable);
                e.chain = c;
                popped.push_back(id);
            }
        } else if (action < 9) {
            if (!popped.empty()) {
                const std::size_t k =
                    static_cast<std::size_t>(uniform(0, static_cast<int>(popped.size()) - 1));
                const uint16_t id = popped[k];
                popped.erase(popped.begin() + static_cast<long>(k));
                const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(
                    added[id].chain.writable_bytes(), static_cast<uint64_t>(uniform(0, 200))));
                REQUIRE(rig.q->push(added[id].chain, len));
                pushed_len[id] = len;
            }
        } else {
            while (auto used = rig.drv.get_used()) {
                ++collected_total;
                REQUIRE(pushed_len.count(used->id) == 1);
                CHECK(used->written == (pushed_len[used->id] != 0));
                if (used->written) CHECK(used->len == pushed_len[used->id]);
                pushed_len.erase(used->id);
                added.erase(used->id);
            }
        }
        if (rig.drv.avail_wrap() != last_wrap) {
            ++wraps;
            last_wrap = rig.drv.avail_wrap();
        }
    }
    CHECK_FALSE(rig.q->broken());
    CHECK(popped_total >= collected_total);
    if (wraps_out) *wraps_out = wraps;
}

}  // namespace

TEST_CASE("packed: wrap counters flip many times, for sizes that are powers of two or not") {
    for (uint16_t size : {1, 2, 3, 5, 7, 8, 9, 16, 100, 256}) {
        for (uint64_t features : {uint64_t{0}, kIndirect}) {
            INFO("size " << size << " features " << features);
            int wraps = 0;
            random_traffic(size, features, 20000,
                           size * 31u + static_cast<uint32_t>(features >> 20), &wraps);
            CHECK(wraps >= 10);
        }
    }
}

TEST_CASE("packed: in-order traffic laps the ring of 32768 too") {
    Rig rig(32768, 0, 4 << 20);
    const DriverBuffer b = rig.drv.alloc_buffer(8), w = rig.drv.alloc_buffer(8);
    for (int lap = 0; lap < 3; ++lap) {
        for (int i = 0; i < 32768 / 2; ++i) {
            REQUIRE(rig.drv.add(std::span(&b, 1), std::span(&w, 1)));
            rig.drv.publish();
            DescriptorChain c = rig.pop_one();
            REQUIRE(rig.q->push(c, 8));
            auto used = rig.drv.get_used();
            REQUIRE(used);
            REQUIRE(used->len == 8);
        }
        CHECK(rig.drv.last_used() == 0);
        CHECK(rig.drv.used_wrap() == (lap % 2 == 1));
    }
}

TEST_CASE("packed: out-of-order completion returns buffers by id") {
    Rig rig(8);
    // Lists of 1, 2, 1 and 3 slots: slots 0, 1-2, 3, 4-6.
    std::vector<DriverBuffer> b;
    for (int i = 0; i < 7; ++i) b.push_back(rig.drv.alloc_buffer(8));
    std::vector<uint16_t> ids;
    const int shape[4] = {1, 2, 1, 3};
    int used_bufs = 0;
    for (int n : shape) {
        auto id = rig.drv.add({}, std::span(b).subspan(static_cast<std::size_t>(used_bufs),
                                                       static_cast<std::size_t>(n)));
        REQUIRE(id);
        ids.push_back(*id);
        used_bufs += n;
    }
    rig.drv.publish();
    std::vector<DescriptorChain> chains;
    for (int i = 0; i < 4; ++i) chains.push_back(rig.pop_one());
    for (int i = 0; i < 4; ++i)
        CHECK(chains[static_cast<std::size_t>(i)].token().id == ids[static_cast<std::size_t>(i)]);
    // Completed as third, first, fourth, second: used elements at slots 0, 1, 2 and 5.
    const int order[4] = {2, 0, 3, 1};
    const uint16_t used_slot[4] = {0, 1, 2, 5};
    for (int k = 0; k < 4; ++k) {
        const auto& c = chains[static_cast<std::size_t>(order[k])];
        REQUIRE(rig.q->push(c, static_cast<uint32_t>(k + 1)));
        CHECK(rig.drv.desc(used_slot[k]).id == c.token().id);
    }
    for (int k = 0; k < 4; ++k) {
        auto used = rig.drv.get_used();
        REQUIRE(used);
        CHECK(used->id == ids[static_cast<std::size_t>(order[k])]);
        CHECK(used->len == static_cast<uint32_t>(k + 1));
    }
    CHECK(rig.drv.last_used() == 7);
    CHECK(rig.drv.num_free() == 8);
}

TEST_CASE("packed: random out-of-order traffic with event index and indirect tables") {
    random_traffic(7, kIndirect | kEventIdx, 50000, 7);
    random_traffic(64, kIndirect | kEventIdx, 50000, 64);
    random_traffic(1, kIndirect, 2000, 1);
}

// ---------------------------------------------------------------------------------------------
// Driver event suppression: needs_interrupt()

TEST_CASE("packed: ENABLE interrupts after any push, DISABLE never") {
    for (uint64_t features : {uint64_t{0}, kEventIdx}) {
        Rig rig(4, features);
        CHECK_FALSE(rig.q->needs_interrupt());  // nothing used yet
        rig.add_pair();
        REQUIRE(rig.q->push(rig.pop_one(), 0));
        CHECK(rig.q->needs_interrupt());
        CHECK_FALSE(rig.q->needs_interrupt());  // the batch was reset
        rig.drv.set_driver_event(PackedDriver::kEventDisable, 0);
        rig.add_pair();
        REQUIRE(rig.q->push(rig.pop_one(), 0));
        CHECK_FALSE(rig.q->needs_interrupt());
        rig.drv.set_driver_event(PackedDriver::kEventEnable, 0);
        CHECK_FALSE(rig.q->needs_interrupt());  // that push was already decided
        REQUIRE(rig.drv.get_used());
        REQUIRE(rig.drv.get_used());
        // The reserved flags value 3 is not DISABLE: interrupt.
        rig.add_pair();
        REQUIRE(rig.q->push(rig.pop_one(), 0));
        rig.drv.set_driver_event(3, 0);
        CHECK(rig.q->needs_interrupt());
    }
}

TEST_CASE("packed: DESC means ENABLE when EVENT_IDX was not negotiated") {
    Rig rig(4, 0);
    rig.drv.set_driver_event(PackedDriver::kEventDesc, PackedDriver::off_wrap(3, true));
    rig.add_pair();
    REQUIRE(rig.q->push(rig.pop_one(), 0));  // used at slot 0, far from slot 3
    CHECK(rig.q->needs_interrupt());
}

TEST_CASE("packed: DESC's wrap bit picks the lap of the event slot") {
    Rig rig(4, kEventIdx);
    rig.drv.set_driver_event(PackedDriver::kEventDesc,
                             PackedDriver::off_wrap(0, false));  // slot 0, 2nd lap
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(rig.drv.add(std::span(&b, 1), {}));
        rig.drv.publish();
        REQUIRE(rig.q->push(rig.pop_one(), 0));
        CHECK_FALSE(rig.q->needs_interrupt());  // slots 0..3 of the first lap
        REQUIRE(rig.drv.get_used());
    }
    REQUIRE(rig.drv.add(std::span(&b, 1), {}));
    rig.drv.publish();
    REQUIRE(rig.q->push(rig.pop_one(), 0));
    CHECK(rig.q->needs_interrupt());  // slot 0 of the second lap
    // And a slot inside a list counts when the list's used element skips over it.
    rig.drv.set_driver_event(PackedDriver::kEventDesc, PackedDriver::off_wrap(2, false));
    REQUIRE(rig.drv.get_used());
    const DriverBuffer three[3] = {b, b, b};
    REQUIRE(rig.drv.add(three, {}));
    rig.drv.publish();
    REQUIRE(rig.q->push(rig.pop_one(), 0));  // slots 1..3: used element at 1, 2 skipped
    CHECK(rig.q->needs_interrupt());
}

TEST_CASE("packed: DESC interrupts exactly when the used slots cover (off, wrap), per 2.8.10") {
    // The spec's rule, checked independently: keep a running count of used slots from
    // activation; slot t of that count sits at ring offset t % size with wrap counter 1 on even
    // laps. An interrupt is due when one of the slots used since the last decision is the event's.
    for (uint16_t size : {1, 5, 8, 13}) {
        INFO("size " << size);
        Rig rig(size, kEventIdx);
        std::mt19937 rng(size);
        const DriverBuffer b = rig.drv.alloc_buffer(8);
        uint64_t used_total = 0;
        std::vector<DescriptorChain> in_flight;
        int fired = 0;
        for (int round = 0; round < 3000; ++round) {
            const uint16_t off = static_cast<uint16_t>(rng() % size);
            const bool wrap = rng() % 2;
            rig.drv.set_driver_event(PackedDriver::kEventDesc, PackedDriver::off_wrap(off, wrap));
            const uint64_t before = used_total;
            const int pushes = static_cast<int>(rng() % (3u * size));  // up to three laps
            for (int p = 0; p < pushes; ++p) {
                // Keep the ring busy with lists of 1..3 slots completed in random order.
                while (rig.drv.num_free() > 0) {
                    const int n =
                        1 + static_cast<int>(rng() % std::min<unsigned>(3, rig.drv.num_free()));
                    const DriverBuffer list[3] = {b, b, b};
                    REQUIRE(rig.drv.add(std::span(list, static_cast<std::size_t>(n)), {}));
                }
                rig.drv.publish();
                DescriptorChain c;
                while (rig.q->pop(c).value()) in_flight.push_back(c);
                REQUIRE(!in_flight.empty());
                const std::size_t k = rng() % in_flight.size();
                REQUIRE(rig.q->push(in_flight[k], 0));
                used_total += in_flight[k].token().ring_slots;
                in_flight.erase(in_flight.begin() + static_cast<long>(k));
                while (rig.drv.get_used()) {
                }
            }
            bool expected = false;
            for (uint64_t t = before; t < used_total && !expected; ++t) {
                expected = t % size == off && ((t / size) % 2 == 0) == wrap;
            }
            fired += expected;
            REQUIRE(rig.q->needs_interrupt() == expected);
        }
        CHECK(fired > 100);
    }
}

TEST_CASE("packed: Linux-style enable_interrupts and enable_interrupts_delayed") {
    Rig rig(8, kEventIdx);
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    for (int i = 0; i < 8; ++i) REQUIRE(rig.drv.add(std::span(&b, 1), {}));
    rig.drv.publish();
    std::vector<DescriptorChain> chains;
    for (int i = 0; i < 8; ++i) chains.push_back(rig.pop_one());

    CHECK_FALSE(rig.drv.enable_interrupts());  // DESC at the next slot to consume: 0
    CHECK(rig.drv.driver_event().flags == PackedDriver::kEventDesc);
    CHECK(rig.drv.driver_event().off_wrap == PackedDriver::off_wrap(0, true));
    REQUIRE(rig.q->push(chains[0], 0));
    CHECK(rig.q->needs_interrupt());
    REQUIRE(rig.q->push(chains[1], 0));
    CHECK_FALSE(rig.q->needs_interrupt());  // the driver has not consumed slot 0 yet
    REQUIRE(rig.drv.get_used());
    REQUIRE(rig.drv.get_used());  // off_wrap follows: now slot 2
    CHECK(rig.drv.driver_event().off_wrap == PackedDriver::off_wrap(2, true));
    REQUIRE(rig.q->push(chains[2], 0));
    CHECK(rig.q->needs_interrupt());
    REQUIRE(rig.drv.get_used());

    // Delayed: 5 slots in flight from slot 3, 3/4 of them is 3: interrupt at slot 6.
    CHECK_FALSE(rig.drv.enable_interrupts_delayed());
    CHECK(rig.drv.driver_event().off_wrap == PackedDriver::off_wrap(6, true));
    for (int i = 3; i < 6; ++i) {
        REQUIRE(rig.q->push(chains[static_cast<std::size_t>(i)], 0));
        CHECK_FALSE(rig.q->needs_interrupt());
    }
    REQUIRE(rig.q->push(chains[6], 0));
    CHECK(rig.q->needs_interrupt());
    CHECK(rig.drv.enable_interrupts());  // used elements are pending: poll, don't sleep

    rig.drv.disable_interrupts();
    REQUIRE(rig.q->push(chains[7], 0));
    CHECK_FALSE(rig.q->needs_interrupt());
}

TEST_CASE("packed: push_and_needs_interrupt decides for the whole batch") {
    Rig rig(8, kEventIdx);
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    for (int i = 0; i < 4; ++i) REQUIRE(rig.drv.add(std::span(&b, 1), {}));
    rig.drv.publish();
    std::vector<DescriptorChain> chains;
    for (int i = 0; i < 4; ++i) chains.push_back(rig.pop_one());
    // An interrupt once slot 1 is used: the batch of slots 0..2 covers it.
    rig.drv.set_driver_event(PackedDriver::kEventDesc, PackedDriver::off_wrap(1, true));
    REQUIRE(rig.q->push(chains[0], 0));
    REQUIRE(rig.q->push(chains[1], 0));
    auto last = rig.q->push_and_needs_interrupt(chains[2], 0);
    REQUIRE(last);
    CHECK(*last);
    CHECK_FALSE(rig.q->needs_interrupt());                      // the batch was reset
    auto next = rig.q->push_and_needs_interrupt(chains[3], 0);  // slot 3: past the event
    REQUIRE(next);
    CHECK_FALSE(*next);
    for (int i = 0; i < 4; ++i) CHECK(rig.drv.get_used());
}

// ---------------------------------------------------------------------------------------------
// Device event suppression: kicks

TEST_CASE("packed: kick suppression without EVENT_IDX") {
    Rig rig(4);
    rig.add_pair();
    CHECK(rig.drv.kick_needed());  // the area starts zeroed: ENABLE
    rig.q->disable_notifications();
    CHECK(rig.drv.device_event().flags == PackedDriver::kEventDisable);
    rig.add_pair();
    CHECK_FALSE(rig.drv.kick_needed());
    DescriptorChain a = rig.pop_one(), b = rig.pop_one();
    CHECK(rig.pop_none());
    // Nothing arrived since the ring was drained: enable says so.
    CHECK_FALSE(rig.q->enable_notifications().value());
    CHECK(rig.drv.device_event().flags == PackedDriver::kEventEnable);
    rig.q->disable_notifications();
    // A buffer that arrives while kicks are off is found by enable.
    REQUIRE(rig.q->push(a, 0));
    REQUIRE(rig.q->push(b, 0));
    REQUIRE(rig.drv.get_used());
    REQUIRE(rig.drv.get_used());
    rig.add_pair();
    CHECK_FALSE(rig.drv.kick_needed());
    CHECK(rig.q->enable_notifications().value());
    rig.pop_one();
}

TEST_CASE("packed: kick suppression with EVENT_IDX: DESC at the next slot the device reads") {
    Rig rig(4, kEventIdx);
    CHECK_FALSE(rig.q->enable_notifications().value());
    CHECK(rig.drv.device_event().flags == PackedDriver::kEventDesc);
    CHECK(rig.drv.device_event().off_wrap == PackedDriver::off_wrap(0, true));
    rig.add_pair();  // slots 0-1: covers the event
    CHECK(rig.drv.kick_needed());
    rig.add_pair();  // slots 2-3: the device has not asked again
    CHECK_FALSE(rig.drv.kick_needed());
    DescriptorChain a = rig.pop_one(), b = rig.pop_one();
    CHECK_FALSE(rig.q->enable_notifications().value());
    CHECK(rig.drv.device_event().off_wrap == PackedDriver::off_wrap(0, false));  // second lap
    REQUIRE(rig.q->push(a, 0));
    REQUIRE(rig.drv.get_used());
    rig.add_pair();  // slots 0-1 of the second lap
    CHECK(rig.drv.kick_needed());
    rig.q->disable_notifications();
    CHECK(rig.drv.device_event().flags == PackedDriver::kEventDisable);
    REQUIRE(rig.q->push(b, 0));
    REQUIRE(rig.drv.get_used());
    rig.add_pair();
    CHECK_FALSE(rig.drv.kick_needed());
    CHECK(rig.q->enable_notifications().value());  // buffers arrived while disabled
}

TEST_CASE("packed: notifications both ways under two threads never get lost") {
    // The device drains with kicks off, re-enables and re-checks before sleeping; the driver
    // sleeps on interrupts with the same pattern. A lost notification leaves one side asleep
    // with work pending: its wait times out and the test fails.
    for (uint64_t features : {uint64_t{0}, kEventIdx | kIndirect}) {
        INFO("features " << features);
        Rig rig(16, features);
        constexpr int kTotal = 30000;
        constexpr auto kPatience = std::chrono::seconds(10);
        std::counting_semaphore<1 << 30> kick(0), irq(0);
        std::atomic<bool> stop{false}, device_failed{false}, device_timed_out{false};
        std::thread device([&] {
            DescriptorChain c;
            while (!stop.load()) {
                rig.q->disable_notifications();
                for (;;) {
                    while (rig.q->pop(c).value_or(false)) {
                        ChainReader r(c);
                        ChainWriter w(c);
                        const auto v = r.read_object<uint64_t>();
                        if (!v || !w.write_object<uint64_t>(*v + 1) || !rig.q->push(c, 8)) {
                            device_failed = true;
                            return;
                        }
                        if (rig.q->needs_interrupt()) irq.release();
                    }
                    auto more = rig.q->enable_notifications();
                    if (!more) {
                        device_failed = true;
                        return;
                    }
                    if (!*more) break;
                    rig.q->disable_notifications();
                }
                if (!kick.try_acquire_for(kPatience) && !stop.load()) device_timed_out = true;
            }
        });

        std::vector<DriverBuffer> in, out;
        std::vector<std::size_t> free_pairs;
        for (std::size_t p = 0; p < 16; ++p) {
            in.push_back(rig.drv.alloc_buffer(8));
            out.push_back(rig.drv.alloc_buffer(8));
            free_pairs.push_back(p);
        }
        std::vector<std::size_t> pair_of(16);
        std::vector<uint64_t> sent_value(16);
        int sent = 0, done = 0, kicks = 0, sleeps = 0;
        bool driver_timed_out = false;
        while (done < kTotal && !device_failed) {
            bool added = false, ring_full = false;
            while (sent < kTotal && !free_pairs.empty()) {
                const std::size_t p = free_pairs.back();
                rig.mem.store<uint64_t>(in[p].addr, uint64_t(sent) * 3);
                const bool indirect = (features & kIndirect) && sent % 2;
                auto id = indirect
                              ? rig.drv.add_indirect(std::span(&in[p], 1), std::span(&out[p], 1))
                              : rig.drv.add(std::span(&in[p], 1), std::span(&out[p], 1));
                if (!id) {
                    ring_full = true;
                    break;
                }
                free_pairs.pop_back();
                pair_of[*id] = p;
                sent_value[*id] = uint64_t(sent) * 3;
                ++sent;
                added = true;
            }
            if (added) {
                rig.drv.publish();
                if (rig.drv.kick_needed()) {
                    ++kicks;
                    kick.release();
                }
            }
            rig.drv.disable_interrupts();
            bool got = false;
            while (auto used = rig.drv.get_used()) {
                const std::size_t p = pair_of[used->id];
                REQUIRE(used->len == 8);
                REQUIRE(rig.mem.load<uint64_t>(out[p].addr) == sent_value[used->id] + 1);
                free_pairs.push_back(p);
                ++done;
                got = true;
            }
            if (got || (sent < kTotal && !free_pairs.empty() && !ring_full)) continue;
            if (rig.drv.enable_interrupts()) continue;
            ++sleeps;
            if (!irq.try_acquire_for(kPatience)) {
                driver_timed_out = true;
                break;
            }
        }
        stop = true;
        kick.release();
        device.join();
        CHECK_FALSE(device_failed);
        CHECK_FALSE(device_timed_out);
        CHECK_FALSE(driver_timed_out);
        CHECK(done == kTotal);
        CHECK_FALSE(rig.q->broken());
        INFO("kicks " << kicks << " driver sleeps " << sleeps);
        CHECK(kicks < kTotal);  // suppression did something
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed rings: each is a QueueError, and the queue stays broken.

TEST_CASE("packed: a buffer outside guest memory") {
    Rig rig(4);
    const PackedDesc d{0x10, 8, 0, 0};  // below RAM
    rig.drv.forge(std::span(&d, 1));
    CHECK(rig.pop_error() == QueueError::AddressOutOfRange);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a buffer running past the end of guest memory") {
    Rig rig(4);
    const PackedDesc d{rig.mem.base() + rig.mem.size() - 8, 16, 0, 0};
    rig.drv.forge(std::span(&d, 1));
    CHECK(rig.pop_error() == QueueError::AddressOutOfRange);
    check_sticky(*rig.q);
}

TEST_CASE("packed: addr + len wrapping the address space") {
    Rig rig(4);
    const PackedDesc d{~uint64_t{7}, 16, 0, 0};
    rig.drv.forge(std::span(&d, 1));
    CHECK(rig.pop_error() == QueueError::LengthOverflow);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a zero-length descriptor") {
    Rig rig(4);
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    const PackedDesc list[2] = {{b.addr.raw(), 8, 0, kNext}, {b.addr.raw(), 0, 0, kWrite}};
    rig.drv.forge(list);
    CHECK(rig.pop_error() == QueueError::ZeroLength);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a list longer than the queue") {
    Rig rig(4);
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    // Four descriptors, all with NEXT: the fifth would be the first again.
    const PackedDesc list[4] = {{b.addr.raw(), 8, 0, kNext},
                                {b.addr.raw(), 8, 0, kNext},
                                {b.addr.raw(), 8, 0, kNext},
                                {b.addr.raw(), 8, 0, kNext}};
    rig.drv.forge(list);
    CHECK(rig.pop_error() == QueueError::ChainTooLong);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a list longer than 2^32 - 1 bytes") {
    // Two 2 GiB descriptors in a 4 GiB region that is reserved, never touched.
    const uint64_t big = (uint64_t{4} << 30) + 4096;
    void* host = mmap(nullptr, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(host != MAP_FAILED);
    Rig rig(4);
    const uint64_t base = uint64_t{1} << 40;
    REQUIRE(rig.mem.memory().add_region(GuestAddress(base), big, host));
    const PackedDesc list[2] = {{base, 0x80000000u, 0, kNext | kWrite},
                                {base + 0x80000000u, 0x80000000u, 0, kWrite}};
    rig.drv.forge(list);
    CHECK(rig.pop_error() == QueueError::LengthOverflow);
    check_sticky(*rig.q);
    munmap(host, big);
}

TEST_CASE("packed: a readable descriptor after a writable one") {
    Rig rig(4);
    const DriverBuffer b = rig.drv.alloc_buffer(8);
    const PackedDesc list[2] = {{b.addr.raw(), 8, 0, kNext | kWrite}, {b.addr.raw(), 8, 0, 0}};
    rig.drv.forge(list);
    CHECK(rig.pop_error() == QueueError::ReadableAfterWritable);
    check_sticky(*rig.q);
}

TEST_CASE("packed: malformed indirect descriptors") {
    const auto run = [](uint64_t features, auto&& forge, QueueError expected) {
        Rig rig(4, features);
        forge(rig);
        CHECK(rig.pop_error() == expected);
        check_sticky(*rig.q);
    };
    const auto table_of = [](Rig& rig, int n, uint16_t flags = 0) {
        std::vector<PackedDesc> t;
        for (int i = 0; i < n; ++i) t.push_back({rig.drv.alloc_buffer(8).addr.raw(), 8, 0, flags});
        return rig.drv.write_table(t);
    };
    SECTION("INDIRECT without VIRTIO_F_INDIRECT_DESC") {
        run(
            0,
            [&](Rig& rig) {
                const PackedDesc d{table_of(rig, 2).raw(), 32, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::BadIndirectTable);
    }
    SECTION("INDIRECT with NEXT") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const DriverBuffer b = rig.drv.alloc_buffer(8);
                const PackedDesc list[2] = {{table_of(rig, 2).raw(), 32, 0, kInd | kNext},
                                            {b.addr.raw(), 8, 0, 0}};
                rig.drv.forge(list);
            },
            QueueError::BadIndirectTable);
    }
    SECTION("INDIRECT after a NEXT") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const DriverBuffer b = rig.drv.alloc_buffer(8);
                const PackedDesc list[2] = {{b.addr.raw(), 8, 0, kNext},
                                            {table_of(rig, 2).raw(), 32, 0, kInd}};
                rig.drv.forge(list);
            },
            QueueError::BadIndirectTable);
    }
    SECTION("table length 0") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc d{table_of(rig, 2).raw(), 0, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::BadIndirectTable);
    }
    SECTION("table length not a multiple of 16") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc d{table_of(rig, 2).raw(), 24, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::BadIndirectTable);
    }
    SECTION("table longer than the device accepts") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc d{table_of(rig, 1).raw(), 16 * 65537, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::BadIndirectTable);
    }
    SECTION("table outside guest memory") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc d{rig.mem.base() + rig.mem.size() - 16, 32, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::AddressOutOfRange);
    }
    SECTION("nested indirect") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const GuestAddress inner = table_of(rig, 1);
                const PackedDesc outer[2] = {{rig.drv.alloc_buffer(8).addr.raw(), 8, 0, 0},
                                             {inner.raw(), 16, 0, kInd}};
                const PackedDesc d{rig.drv.write_table(outer).raw(), 32, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::NestedIndirect);
    }
    SECTION("zero-length buffer inside the table") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc t[2] = {{rig.drv.alloc_buffer(8).addr.raw(), 8, 0, 0},
                                         {rig.drv.alloc_buffer(8).addr.raw(), 0, 0, 0}};
                const PackedDesc d{rig.drv.write_table(t).raw(), 32, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::ZeroLength);
    }
    SECTION("readable after writable inside the table") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc t[2] = {{rig.drv.alloc_buffer(8).addr.raw(), 8, 0, kWrite},
                                         {rig.drv.alloc_buffer(8).addr.raw(), 8, 0, 0}};
                const PackedDesc d{rig.drv.write_table(t).raw(), 32, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::ReadableAfterWritable);
    }
    SECTION("buffer outside memory inside the table") {
        run(
            kIndirect,
            [&](Rig& rig) {
                const PackedDesc t[1] = {{0x20, 8, 0, 0}};
                const PackedDesc d{rig.drv.write_table(t).raw(), 16, 0, kInd};
                rig.drv.forge(std::span(&d, 1));
            },
            QueueError::AddressOutOfRange);
    }
}

TEST_CASE("packed: a buffer id beyond the queue size") {
    Rig rig(4);
    const PackedDesc d{rig.drv.alloc_buffer(8).addr.raw(), 8, 4, 0};
    rig.drv.forge(std::span(&d, 1));
    CHECK(rig.pop_error() == QueueError::BadBufferId);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a buffer id already in flight") {
    Rig rig(4);
    const PackedDesc d{rig.drv.alloc_buffer(8).addr.raw(), 8, 1, 0};
    rig.drv.forge(std::span(&d, 1));
    rig.pop_one();
    rig.drv.forge(std::span(&d, 1));
    CHECK(rig.pop_error() == QueueError::BadBufferId);
    check_sticky(*rig.q);
}

TEST_CASE("packed: a buffer id free again once used") {
    Rig rig(4);
    const PackedDesc d{rig.drv.alloc_buffer(8).addr.raw(), 8, 1, 0};
    for (int i = 0; i < 10; ++i) {
        rig.drv.forge(std::span(&d, 1));
        REQUIRE(rig.q->push(rig.pop_one(), 0));
    }
    CHECK_FALSE(rig.q->broken());
}

TEST_CASE("packed: more ring slots in flight than the ring holds") {
    // Lists of 3 and 1 slots fill a ring of 4; the used element of the second frees one slot in
    // the driver's eyes, never the 3 of the first: a new buffer there overruns the device.
    Rig rig(4);
    const uint64_t a = rig.drv.alloc_buffer(8).addr.raw();
    const PackedDesc three[3] = {{a, 8, 0, kNext}, {a, 8, 0, kNext}, {a, 8, 0, 0}};
    const PackedDesc one{a, 8, 1, 0};
    rig.drv.forge(three);
    rig.drv.forge(std::span(&one, 1));
    rig.pop_one();
    DescriptorChain second = rig.pop_one();
    REQUIRE(rig.q->push(second, 0));
    const PackedDesc two[2] = {{a, 8, 2, kNext}, {a, 8, 2, 0}};
    rig.drv.forge(two);
    CHECK(rig.pop_error() == QueueError::ChainTooLong);
    check_sticky(*rig.q);
}

TEST_CASE("packed: pushing a chain that is not in flight") {
    SECTION("twice") {
        Rig rig(4);
        rig.add_pair();
        DescriptorChain c = rig.pop_one();
        REQUIRE(rig.q->push(c, 0));
        auto r = rig.q->push(c, 0);
        REQUIRE(!r);
        CHECK(r.error() == QueueError::BadBufferId);
        check_sticky(*rig.q);
    }
    SECTION("never popped") {
        Rig rig(4);
        DescriptorChain c;
        c.clear({2, 1});
        auto r = rig.q->push(c, 0);
        REQUIRE(!r);
        CHECK(r.error() == QueueError::BadBufferId);
        check_sticky(*rig.q);
    }
    SECTION("id beyond the queue") {
        Rig rig(4);
        DescriptorChain c;
        c.clear({4, 1});
        CHECK(rig.q->push(c, 0).error() == QueueError::BadBufferId);
        check_sticky(*rig.q);
    }
    SECTION("right id, wrong slot count") {
        Rig rig(4);
        const uint16_t id = rig.add_pair();
        rig.pop_one();
        DescriptorChain c;
        c.clear({id, 1});  // the list took 2
        CHECK(rig.q->push(c, 0).error() == QueueError::BadBufferId);
        check_sticky(*rig.q);
    }
    SECTION("twice, the second time with the interrupt decision") {
        Rig rig(4);
        rig.add_pair();
        DescriptorChain c = rig.pop_one();
        REQUIRE(rig.q->push_and_needs_interrupt(c, 0));
        auto r = rig.q->push_and_needs_interrupt(c, 0);
        REQUIRE(!r);
        CHECK(r.error() == QueueError::BadBufferId);
        check_sticky(*rig.q);
    }
}

TEST_CASE("packed: descriptors that are not available are not popped") {
    Rig rig(4);
    const uint64_t a = rig.drv.alloc_buffer(8).addr.raw();
    // AVAIL == USED == 1: a used descriptor from the device's point of view, not available.
    rig.drv.set_desc(0, {a, 8, 0, PackedDriver::kDescF_Avail | PackedDriver::kDescF_Used});
    CHECK(rig.pop_none());
    // AVAIL matches the previous lap (0) with USED 1: not for this lap either.
    rig.drv.set_desc(0, {a, 8, 0, PackedDriver::kDescF_Used});
    CHECK(rig.pop_none());
    rig.drv.set_desc(0, {a, 8, 0, PackedDriver::kDescF_Avail});
    rig.pop_one();
    CHECK_FALSE(rig.q->broken());
}

TEST_CASE("packed: a broken queue stays broken even once the ring is fixed") {
    Rig rig(4, kEventIdx);
    const PackedDesc bad{0x10, 8, 0, 0};
    rig.drv.forge(std::span(&bad, 1));
    CHECK(rig.pop_error() == QueueError::AddressOutOfRange);
    // Whatever the guest writes now, the queue waits for a reset.
    const PackedDesc good{rig.drv.alloc_buffer(8).addr.raw(), 8, 1, 0};
    rig.drv.forge(std::span(&good, 1));
    check_sticky(*rig.q);
    check_sticky(*rig.q);
}

TEST_CASE("describe() tells the positions, what is in flight and both event areas") {
    Rig r(4, kEventIdx);
    CHECK(r.q->describe() ==
          "packed ring of 4: next avail 0 (wrap 1, not available), next used 0 (wrap 1), 0 slots "
          "in flight, driver event flags 0 off_wrap 0x0, device event flags 0 off_wrap 0x0");
    r.add_pair();
    r.add_pair();
    r.drv.set_driver_event(VRING_PACKED_EVENT_FLAG_DESC, 0x8001);
    const DescriptorChain first = r.pop_one();
    CHECK(r.q->describe() ==
          "packed ring of 4: next avail 2 (wrap 1, available), next used 0 (wrap 1), 2 slots in "
          "flight, driver event flags 2 off_wrap 0x8001, device event flags 0 off_wrap 0x0");
    r.pop_one();
    REQUIRE(r.q->push(first, 0));
    REQUIRE_FALSE(*r.q->enable_notifications());
    CHECK(r.q->describe() ==
          "packed ring of 4: next avail 0 (wrap 0, not available), next used 2 (wrap 1), 2 slots "
          "in flight, driver event flags 2 off_wrap 0x8001, device event flags 2 off_wrap 0x0");
}
