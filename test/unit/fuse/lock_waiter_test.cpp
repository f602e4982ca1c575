// SPDX-License-Identifier: Apache-2.0
// LockWaiter and thread names: waiters wake on nudges, not on a tick; the host-holder fallback
// backs off and still notices; stop() and cancel(); fs:TAG:ROLE names cut to 15 bytes.
#include "fuse/lock_waiter.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <thread>

#include "tasks.hpp"
#include "util/thread_name.hpp"

using namespace std::chrono_literals;
using vfsdax::fs::thread_name;
using vfsdax::fs::fuse::LockWaiter;
using vfsdax::test::await_tasks_named;
using vfsdax::test::voluntary_switches;

namespace {

// No fallback retry within any test's lifetime: whatever is granted was woken by an event.
constexpr LockWaiter::Fallback kNever{std::chrono::hours(1), std::chrono::hours(1)};

// A parked request whose lock is held until release(); counts its attempts.
struct Held {
    std::atomic<bool> released{false};
    std::atomic<int> attempts{0};
    std::promise<int> result;
    std::future<int> done = result.get_future();

    LockWaiter::Attempt attempt() {
        return [this] {
            ++attempts;
            return released ? 0 : EAGAIN;
        };
    }
    LockWaiter::Finish finish() {
        return [this](int error) { result.set_value(error); };
    }
    bool finished_within(std::chrono::milliseconds timeout) {
        return done.wait_for(timeout) == std::future_status::ready;
    }
};

void await_attempts(const Held& held, int count) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (held.attempts < count && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    REQUIRE(held.attempts == count);
}

}  // namespace

TEST_CASE("thread names: fs:TAG:ROLE, the role whole, the tag cut to 15 bytes", "[fuse]") {
    CHECK(thread_name("share", "0") == "fs:share:0");
    CHECK(thread_name("share", "lock") == "fs:share:lock");
    CHECK(thread_name("", "requester") == "fs:requester");
    CHECK(thread_name("a-very-long-tag", "12") == "fs:a-very-lo:12");
    // Never half a UTF-8 character: "a" then two-byte characters, cut after the fourth.
    CHECK(thread_name("a\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", "0") ==
          "fs:a\u00e9\u00e9\u00e9\u00e9:0");
    // No room for even one byte of tag: the role alone.
    CHECK(thread_name("share", "0123456789ab") == "fs:0123456789ab");
    for (const char* tag : {"x", "share", "a-tag-of-36-bytes-aaaaaaaaaaaaaaaaaa"}) {
        for (const char* role : {"0", "1023", "lock", "requester"}) {
            CHECK(thread_name(tag, role).size() <= vfsdax::fs::kThreadNameMax);
        }
    }
}

TEST_CASE("lock waiter: named, asleep with nothing parked, no thread before a park", "[fuse]") {
    LockWaiter waiter("fs:t1:lock", kNever);
    CHECK(await_tasks_named("fs:t1:lock", 0, 0ms).empty());
    Held held;
    held.released = true;
    waiter.park(1, held.attempt(), held.finish());
    REQUIRE(held.finished_within(5s));
    CHECK(held.done.get() == 0);
    const auto tids = await_tasks_named("fs:t1:lock", 1);
    REQUIRE(tids.size() == 1);
    // Let it settle into its wait, then see that it is not woken: the old loop ticked every
    // 10 ms, parked requests or none (about 20 wake-ups here).
    std::this_thread::sleep_for(20ms);
    const uint64_t before = voluntary_switches(tids[0]);
    std::this_thread::sleep_for(200ms);
    CHECK(voluntary_switches(tids[0]) == before);
}

TEST_CASE("lock waiter: a nudge grants a parked request, and nothing polls meanwhile", "[fuse]") {
    LockWaiter waiter("fs:t2:lock", kNever);
    Held held;
    waiter.park(7, held.attempt(), held.finish());
    await_attempts(held, 1);  // the park's own pass
    const auto tids = await_tasks_named("fs:t2:lock", 1);
    REQUIRE(tids.size() == 1);
    std::this_thread::sleep_for(20ms);
    const uint64_t before = voluntary_switches(tids[0]);
    std::this_thread::sleep_for(200ms);
    CHECK(held.attempts == 1);
    CHECK(voluntary_switches(tids[0]) == before);
    CHECK(!held.finished_within(0ms));
    // The holder lets go through the server, which nudges: granted at once, one more attempt.
    held.released = true;
    waiter.nudge();
    REQUIRE(held.finished_within(5s));
    CHECK(held.done.get() == 0);
    CHECK(held.attempts == 2);
}

TEST_CASE("lock waiter: a release racing a failing attempt is not lost", "[fuse]") {
    LockWaiter waiter("fs:t3:lock", kNever);
    Held held;
    // The first attempt fails, and the holder lets go (and nudges) while that pass runs: the
    // waiters are out of the list then, and the nudge must still bring another pass.
    std::atomic<int> attempts{0};
    waiter.park(
        1,
        [&] {
            if (++attempts > 1) return 0;
            waiter.nudge();
            return EAGAIN;
        },
        held.finish());
    REQUIRE(held.finished_within(5s));
    CHECK(attempts == 2);
}

TEST_CASE("lock waiter: a granted request has the others tried again at once", "[fuse]") {
    LockWaiter waiter("fs:t4:lock", kNever);
    // B waits for A (a read lock over A's owner's write lock lets B in); A's attempt succeeds
    // in the pass after B's failed, with no unlock anywhere to nudge.
    Held b;
    std::atomic<bool> a_granted{false};
    waiter.park(
        1, [&] { return a_granted ? 0 : EAGAIN; }, b.finish());
    Held a;
    a.released = true;
    waiter.park(
        2,
        [&] {
            a_granted = true;
            return 0;
        },
        a.finish());
    REQUIRE(a.finished_within(5s));
    REQUIRE(b.finished_within(5s));
    CHECK(b.done.get() == 0);
}

TEST_CASE("lock waiter: the host-holder fallback backs off and still notices", "[fuse]") {
    // A holder the server never hears from: only the timer finds the lock free.
    LockWaiter waiter("fs:t5:lock", {2ms, 16ms});
    Held held;
    waiter.park(1, held.attempt(), held.finish());
    std::this_thread::sleep_for(400ms);
    // Retries at 2, 4, 8, then every 16 ms: about 28 in 400 ms. A fixed 2 ms tick makes 200.
    CHECK(held.attempts >= 5);
    CHECK(held.attempts <= 40);
    held.released = true;
    REQUIRE(held.finished_within(5s));
    CHECK(held.done.get() == 0);
}

TEST_CASE("lock waiter: cancel() finishes with EINTR, stop() drops and ends the thread", "[fuse]") {
    LockWaiter waiter("fs:t6:lock", kNever);
    Held interrupted;
    Held dropped;
    waiter.park(1, interrupted.attempt(), interrupted.finish());
    waiter.park(2, dropped.attempt(), dropped.finish());
    await_attempts(dropped, 1);
    waiter.cancel(1);
    REQUIRE(interrupted.finished_within(5s));
    CHECK(interrupted.done.get() == EINTR);
    REQUIRE(await_tasks_named("fs:t6:lock", 1).size() == 1);
    waiter.stop();
    CHECK(await_tasks_named("fs:t6:lock", 0).empty());
    // Dropped, not finished: a session reset sends no reply.
    CHECK(!dropped.finished_within(0ms));
    // A park after stop() is served by a new thread.
    Held again;
    again.released = true;
    waiter.park(3, again.attempt(), again.finish());
    REQUIRE(again.finished_within(5s));
    CHECK(again.done.get() == 0);
}
