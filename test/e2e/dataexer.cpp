// SPDX-License-Identifier: Apache-2.0
// dataexer: data-integrity exerciser for one file: seeded random I/O, each result checked against
// a shadow copy of what the file must hold (model-based), the final contents hashed for the host.
//
// Built statically so the same binary runs in the L2 initramfs and in L1/the host.
// Usage (exit 0 when every check held, 1 on the first failure, 2 on bad usage):
//   dataexer run FILE [OPTIONS]   creates/empties FILE and runs random operations on it:
//       pread (checked), pwrite (inside and past the end), mmap MAP_SHARED read (checked) and
//       write (+ msync), ftruncate down and up, fallocate PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE,
//       copy_file_range inside the file, fsync/fdatasync, close + reopen, a whole-file check.
//       After each mmap op the tail of the page holding the end of the file must read zero.
//       Now and then a truncate-down is followed by a pause (so a VMM's once-a-second
//       truncation scan runs) and then by a regrowth and writes into the regrown range.
//       Ends with fsync, a whole-file check and one line "DATAEXER: ops=N size=S hash=H".
//     --seed N          PRNG seed (default 1); one seed gives one sequence of operations
//     --ops N           operations to run (default 10000; with --duration, 0 = no limit)
//     --duration S      stop after S seconds (the long soak mode); the count is then timing
//     --max-size BYTES  the file never grows past this (default 8M; K/M/G suffixes)
//     --max-io BYTES    longest single read/write/copy (default 64K)
//     --pause-ms MS     length of one pause after a truncate-down (default 1500)
//     --pause-total S   total pause budget in seconds (default 10, or duration/10 with
//                       --duration); 0 turns pauses off without changing the operations
//     --disable LIST    comma list of operations never to run (names as in the history)
//     --history N       operations listed on failure (default 20)
//     --progress S      with a "dataexer: progress ..." line every S seconds (default off)
//     --verbose         print every operation as it starts
//   dataexer hash FILE            prints "size=S hash=H" for FILE (H as in the DATAEXER line)
// H is the 64-bit FNV-1a hash of the contents, 16 hex digits. An operation the file system
// refuses with EOPNOTSUPP/ENOSYS (say ZERO_RANGE on tmpfs) is disabled with one NOTE on stderr.
// On failure: the op number, op, offset, length, the first differing offset with expected and
// actual bytes, then the last operations, all on stderr prefixed "dataexer: ".
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: dataexer run FILE [--seed N] [--ops N] [--duration S] [--max-size B] "
                 "[--max-io B] [--pause-ms MS] [--pause-total S] [--disable OP,...] "
                 "[--history N] [--progress S] [--verbose] | dataexer hash FILE\n");
    std::exit(2);
}

uint64_t number(const char* text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text, &end, 0);
    uint64_t scale = 1;
    if (end != text && *end != '\0' && end[1] == '\0') {
        switch (*end) {
            case 'K':
            case 'k':
                scale = 1024;
                ++end;
                break;
            case 'M':
            case 'm':
                scale = kMiB;
                ++end;
                break;
            case 'G':
            case 'g':
                scale = 1024 * kMiB;
                ++end;
                break;
            default:
                break;
        }
    }
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        std::fprintf(stderr, "dataexer: '%s' is not a non-negative number\n", text);
        std::exit(2);
    }
    return v * scale;
}

uint64_t fnv1a(const uint8_t* p, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

// splitmix64's finaliser: a good 64-bit mix, used both for the PRNG and the data pattern.
uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct Rng {
    uint64_t state;
    uint64_t next() { return mix(state += 0x9e3779b97f4a7c15ULL); }
    // Uniform enough in [0, n) for our n (at most a few GiB); 0 when n is 0.
    uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
    bool chance(unsigned percent) { return below(100) < percent; }
};

long long now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1'000'000;
}

// SIGBUS from a mapped access (a file shorter than the model says) becomes a failure report.
sigjmp_buf g_bus_jump;
volatile sig_atomic_t g_bus_armed = 0;

void on_sigbus(int sig) {
    if (g_bus_armed) siglongjmp(g_bus_jump, 1);
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

enum Op {
    kRead,
    kWrite,
    kMapRead,
    kMapWrite,
    kTruncate,
    kPunch,
    kZero,
    kCopy,
    kFsync,
    kReopen,
    kVerify,
    kOpCount
};
constexpr std::array<const char*, kOpCount> kOpNames = {
    "read",       "write",      "mapread", "mapwrite", "truncate", "punch-hole",
    "zero-range", "copy-range", "fsync",   "reopen",   "verify"};
// Relative frequencies: data ops dominate, size changes are frequent enough to shrink and
// regrow the file all the time.
constexpr std::array<unsigned, kOpCount> kWeights = {20, 18, 10, 12, 10, 4, 3, 5, 3, 3, 1};

struct Options {
    std::string path;
    uint64_t seed = 1;
    uint64_t ops = 10000;
    bool ops_given = false;
    uint64_t duration_s = 0;
    uint64_t max_size = 8 * kMiB;
    uint64_t max_io = 64 * 1024;
    uint64_t pause_ms = 1500;
    uint64_t pause_total_ms = 10'000;
    bool pause_total_given = false;
    std::array<bool, kOpCount> disabled{};
    size_t history = 20;
    uint64_t progress_s = 0;
    bool verbose = false;
};

class Exerciser {
public:
    explicit Exerciser(const Options& o)
        : o_(o), rng_{o.seed}, page_(static_cast<uint64_t>(sysconf(_SC_PAGESIZE))) {
        for (int i = 0; i < kOpCount; ++i) weight_[i] = o.disabled[i] ? 0 : kWeights[i];
    }

    int run() {
        fd_ = open(o_.path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd_ < 0) fail_errno("open " + o_.path);
        const long long start = now_ms();
        long long next_progress = start + static_cast<long long>(o_.progress_s) * 1000;
        while (true) {
            if ((o_.ops != 0 || o_.duration_s == 0) && op_ >= o_.ops) break;
            const long long now = now_ms();
            if (o_.duration_s != 0 && now - start >= static_cast<long long>(o_.duration_s) * 1000)
                break;
            if (o_.progress_s != 0 && now >= next_progress) {
                std::fprintf(stderr, "dataexer: progress ops=%llu size=%zu paused=%llums\n",
                             ull(op_), shadow_.size(), ull(paused_ms_));
                next_progress = now + static_cast<long long>(o_.progress_s) * 1000;
            }
            ++op_;
            step();
        }
        if (fsync(fd_) != 0) fail_errno("final fsync");
        verify("final check");
        if (close(fd_) != 0) fail_errno("close");
        std::printf("DATAEXER: ops=%llu size=%zu hash=%016llx\n", ull(op_), shadow_.size(),
                    ull(fnv1a(shadow_.data(), shadow_.size())));
        return 0;
    }

private:
    static unsigned long long ull(uint64_t v) { return v; }

    // The byte op `op` writes at file offset `off`: recognisable afterwards (see hint()).
    uint8_t pattern_byte(uint64_t op, uint64_t off) const {
        return static_cast<uint8_t>(mix(o_.seed * 0x100000001b3ULL ^ (op << 40) ^ (off >> 3)) >>
                                    (8 * (off & 7)));
    }
    void pattern(uint64_t op, uint64_t off, uint8_t* out, uint64_t len) const {
        for (uint64_t i = 0; i < len; ++i) out[i] = pattern_byte(op, off + i);
    }

    std::string describe(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        return buf;
    }

    // Records the op about to run; a failure names it and lists the ones before it.
    void begin(const std::string& text) {
        current_ = "#" + std::to_string(op_) + " " + text;
        if (o_.verbose) std::fprintf(stderr, "dataexer: %s\n", current_.c_str());
        history_.push_back(current_);
        if (history_.size() > o_.history) history_.pop_front();
    }

    [[noreturn]] void fail(const std::string& what) {
        g_bus_armed = 0;
        std::fflush(stdout);
        std::fprintf(stderr, "dataexer: FAIL: op %s: %s\n", current_.c_str(), what.c_str());
        std::fprintf(stderr, "dataexer: seed %llu, file %s, model size %zu; last %zu operations:\n",
                     ull(o_.seed), o_.path.c_str(), shadow_.size(), history_.size());
        for (const auto& h : history_) std::fprintf(stderr, "dataexer:   %s\n", h.c_str());
        std::exit(1);
    }
    [[noreturn]] void fail_errno(const std::string& what) {
        fail(what + ": " + std::strerror(errno));
    }

    static std::string hex(const uint8_t* p, size_t n) {
        std::string s;
        char b[4];
        for (size_t i = 0; i < n; ++i) {
            std::snprintf(b, sizeof b, "%02x", p[i]);
            s += b;
        }
        return s;
    }

    // Where bytes seen at `off` may have come from: zeros, or an op among the recent ones.
    std::string hint(const uint8_t* p, uint64_t off, size_t n) const {
        if (std::all_of(p, p + n, [](uint8_t b) { return b == 0; })) return "zeros";
        for (uint64_t back = 1; back <= o_.history + 1 && back <= op_; ++back) {
            const uint64_t op = op_ - back + 1;
            bool same = true;
            for (size_t i = 0; i < n && same; ++i) same = p[i] == pattern_byte(op, off + i);
            if (same) return "the data op #" + std::to_string(op) + " wrote there";
        }
        return "not from the last " + std::to_string(o_.history) + " ops";
    }

    // got[0, len) was read (via `how`) from file offset off; it must equal the model.
    void check(const uint8_t* got, uint64_t off, uint64_t len, const char* how) {
        const uint8_t* want = shadow_.data() + off;
        if (std::memcmp(got, want, len) == 0) return;
        uint64_t first = 0;
        while (got[first] == want[first]) ++first;
        uint64_t last = len - 1, count = 0;
        while (got[last] == want[last]) --last;
        for (uint64_t i = first; i <= last; ++i) count += got[i] != want[i];
        const size_t n = static_cast<size_t>(std::min<uint64_t>(16, len - first));
        fail(describe("%s of 0x%llx+0x%llx: bad data at file offset 0x%llx (+0x%llx): "
                      "expected %02x, read %02x; ",
                      how, ull(off), ull(len), ull(off + first), ull(first), want[first],
                      got[first]) +
             describe("%llu bytes differ up to 0x%llx\n", ull(count), ull(off + last)) +
             "dataexer:   expected " + hex(want + first, n) + " (" +
             hint(want + first, off + first, n) + ")\n" + "dataexer:   read     " +
             hex(got + first, n) + " (" + hint(got + first, off + first, n) + ")");
    }

    void check_size(const char* when) {
        struct stat st {};
        if (fstat(fd_, &st) != 0) fail_errno("fstat");
        if (static_cast<uint64_t>(st.st_size) != shadow_.size())
            fail(describe("%s: the file is %lld bytes, the model %zu", when,
                          static_cast<long long>(st.st_size), shadow_.size()));
    }

    void set_size(uint64_t size) { shadow_.resize(size, 0); }

    // A length in [1, limit] (0 if limit is 0): tiny, up to a page, or up to --max-io.
    uint64_t pick_len(uint64_t limit) {
        const uint64_t r = rng_.below(4);
        const uint64_t cap = r == 0 ? 16 : r == 1 ? page_ : o_.max_io;
        return limit == 0 ? 0 : 1 + rng_.below(std::min(limit, cap));
    }

    // An offset in [0, limit): anywhere, page-aligned, near the end or near a 2 MiB boundary
    // (the DAX range size); or, after a regrowth, inside the regrown range.
    uint64_t pick_off(uint64_t limit) {
        if (limit == 0) return 0;
        const uint64_t r = rng_.below(10);
        if (focus_left_ > 0 && rng_.chance(50) && focus_lo_ < std::min(focus_hi_, limit)) {
            --focus_left_;
            return focus_lo_ + rng_.below(std::min(focus_hi_, limit) - focus_lo_);
        }
        uint64_t off;
        if (r < 4) {
            off = rng_.below(limit);
        } else if (r < 7) {
            off = rng_.below(limit) / page_ * page_;
        } else if (r < 9) {
            off = limit - 1 - rng_.below(std::min(limit, 2 * page_));
        } else {
            const uint64_t b = rng_.below(limit / (2 * kMiB) + 1) * 2 * kMiB;
            off = b + rng_.below(2 * page_) - std::min(b, page_);
        }
        return std::min(off, limit - 1);
    }

    void step() {
        const uint64_t size = shadow_.size();
        Op op;
        if (regrow_pending_) {
            op = rng_.chance(70) || weight_[kWrite] == 0 ? kTruncate : kWrite;
        } else {
            unsigned total = 0;
            for (unsigned w : weight_) total += w;
            if (total == 0) fail("every operation is disabled");
            uint64_t r = rng_.below(total);
            int i = 0;
            while (r >= weight_[i]) r -= weight_[i++];
            op = static_cast<Op>(i);
        }
        switch (op) {
            case kRead:
                do_read(size);
                break;
            case kWrite:
                do_write(size);
                break;
            case kMapRead:
                do_map(size, false);
                break;
            case kMapWrite:
                do_map(size, true);
                break;
            case kTruncate:
                do_truncate(size);
                break;
            case kPunch:
                do_fallocate(size, kPunch);
                break;
            case kZero:
                do_fallocate(size, kZero);
                break;
            case kCopy:
                do_copy(size);
                break;
            case kFsync: {
                const bool data = rng_.chance(50);
                begin(data ? "fdatasync" : "fsync");
                if ((data ? fdatasync(fd_) : fsync(fd_)) != 0) fail_errno("fsync");
                break;
            }
            case kReopen:
                begin("reopen");
                if (close(fd_) != 0) fail_errno("close");
                fd_ = open(o_.path.c_str(), O_RDWR);
                if (fd_ < 0) fail_errno("open " + o_.path);
                check_size("after reopen");
                break;
            case kVerify:
                verify("verify");
                break;
            case kOpCount:
                break;
        }
    }

    void pread_all(uint8_t* buf, uint64_t off, uint64_t len, uint64_t* got) {
        *got = 0;
        while (*got < len) {
            const ssize_t n = pread(fd_, buf + *got, len - *got, static_cast<off_t>(off + *got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail_errno(describe("pread 0x%llx+0x%llx", ull(off), ull(len)));
            if (n == 0) break;
            *got += static_cast<uint64_t>(n);
        }
    }

    void do_read(uint64_t size) {
        // Sometimes from past the end: the read must come back short.
        const uint64_t off = rng_.chance(10) ? size + rng_.below(2 * page_) : pick_off(size);
        const uint64_t len = pick_len(o_.max_io);
        begin(describe("read 0x%llx+0x%llx size=0x%llx", ull(off), ull(len), ull(size)));
        buf_.resize(len);
        uint64_t got = 0;
        pread_all(buf_.data(), off, len, &got);
        const uint64_t want = off >= size ? 0 : std::min(len, size - off);
        if (got != want)
            fail(describe("pread returned %llu bytes, want %llu", ull(got), ull(want)));
        check(buf_.data(), off, got, "pread");
    }

    void do_write(uint64_t size) {
        uint64_t off;
        if (regrow_pending_) {
            // Regrowth by an extending write starting inside the range just cut off.
            off = focus_lo_ + rng_.below(regrow_to_ - focus_lo_ + 1);
        } else if (rng_.chance(25) || size == 0) {
            off = size + rng_.below(std::min<uint64_t>(kMiB, o_.max_size - size) + 1);
        } else {
            off = pick_off(size);
        }
        off = std::min(off, o_.max_size - 1);
        const uint64_t len = pick_len(o_.max_size - off);
        begin(describe("write 0x%llx+0x%llx size=0x%llx", ull(off), ull(len), ull(size)));
        buf_.resize(len);
        pattern(op_, off, buf_.data(), len);
        for (uint64_t done = 0; done < len;) {
            const ssize_t n =
                pwrite(fd_, buf_.data() + done, len - done, static_cast<off_t>(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail_errno(describe("pwrite returned %zd", n));
            done += static_cast<uint64_t>(n);
        }
        if (off + len > size) set_size(off + len);
        std::memcpy(shadow_.data() + off, buf_.data(), len);
        if (off + len > size) check_size("after an extending write");
        after_regrowth(size);
    }

    // A MAP_SHARED mapping of [off, off + len), page-aligned start; SIGBUS is a failure.
    void do_map(uint64_t size, bool write) {
        if (size == 0) {
            begin(write ? "mapwrite (empty file: nothing to map)" : "mapread (empty file)");
            return;
        }
        const uint64_t off = pick_off(size);
        const uint64_t len = pick_len(size - off);
        begin(describe("%s 0x%llx+0x%llx size=0x%llx", write ? "mapwrite" : "mapread", ull(off),
                       ull(len), ull(size)));
        const uint64_t start = off / page_ * page_;
        const size_t maplen = static_cast<size_t>(off + len - start);
        void* base = mmap(nullptr, maplen, write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                          fd_, static_cast<off_t>(start));
        if (base == MAP_FAILED) fail_errno("mmap");
        uint8_t* p = static_cast<uint8_t*>(base) + (off - start);
        buf_.resize(len);
        if (write) pattern(op_, off, buf_.data(), len);
        if (sigsetjmp(g_bus_jump, 1) != 0)
            fail(describe("SIGBUS on a mapped %s inside the file (model size 0x%llx)",
                          write ? "store" : "load", ull(size)));
        g_bus_armed = 1;
        if (write) {
            std::memcpy(p, buf_.data(), len);
        } else {
            std::memcpy(buf_.data(), p, len);
        }
        g_bus_armed = 0;
        if (write && msync(base, maplen, MS_SYNC) != 0) fail_errno("msync");
        if (munmap(base, maplen) != 0) fail_errno("munmap");
        if (write) {
            std::memcpy(shadow_.data() + off, buf_.data(), len);
        } else {
            check(buf_.data(), off, len, "mmap load");
        }
        check_eof_tail(size);
    }

    // The rest of the page that holds the end of the file reads zero through a mapping.
    void check_eof_tail(uint64_t size) {
        if (size % page_ == 0) return;
        const uint64_t start = size / page_ * page_;
        void* base = mmap(nullptr, page_, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(start));
        if (base == MAP_FAILED) fail_errno("mmap of the end-of-file page");
        const uint8_t* p = static_cast<const uint8_t*>(base);
        if (sigsetjmp(g_bus_jump, 1) != 0)
            fail(describe("SIGBUS reading the end-of-file page at 0x%llx", ull(start)));
        g_bus_armed = 1;
        std::vector<uint8_t> tail(p + size % page_, p + page_);
        g_bus_armed = 0;
        munmap(base, page_);
        for (uint64_t i = 0; i < tail.size(); ++i) {
            if (tail[i] != 0) {
                const size_t n = static_cast<size_t>(std::min<uint64_t>(16, tail.size() - i));
                fail(describe("non-zero data past the end of the file (size 0x%llx) in its last "
                              "page, mapped: at 0x%llx: ",
                              ull(size), ull(size + i)) +
                     hex(tail.data() + i, n) + " (" + hint(tail.data() + i, size + i, n) + ")");
            }
        }
    }

    void do_truncate(uint64_t size) {
        const bool regrow = regrow_pending_;
        uint64_t to;
        if (regrow) {
            to = regrow_to_ + rng_.below(o_.max_size - regrow_to_ + 1);
        } else if (size == 0 || (size < o_.max_size && rng_.chance(50))) {
            const uint64_t room = o_.max_size - size;
            to = size + 1 + rng_.below(rng_.chance(30) ? std::min(room, 2 * page_) : room);
        } else {
            const uint64_t r = rng_.below(10);
            to = r == 0 ? 0 : rng_.below(size);
            if (r == 1) to = to / page_ * page_;
            if (r == 2) to = to / (2 * kMiB) * (2 * kMiB);
        }
        begin(describe("truncate 0x%llx -> 0x%llx%s", ull(size), ull(to),
                       regrow ? " (regrowth after a pause)" : ""));
        if (ftruncate(fd_, static_cast<off_t>(to)) != 0) fail_errno("ftruncate");
        set_size(to);
        check_size("after ftruncate");
        if (regrow) {
            after_regrowth(size);
        } else if (to < size) {
            // Drawn whatever the budget, so the operations do not depend on --pause-total.
            if (rng_.chance(25) && size - to >= page_) pause_then_regrow(to, size);
        }
    }

    void pause_then_regrow(uint64_t to, uint64_t from) {
        regrow_pending_ = true;
        focus_lo_ = to;
        regrow_to_ = from;
        if (paused_ms_ + o_.pause_ms > o_.pause_total_ms) return;
        history_.back() += describe(", pause %llu ms", ull(o_.pause_ms));
        const timespec ts{static_cast<time_t>(o_.pause_ms / 1000),
                          static_cast<long>(o_.pause_ms % 1000) * 1'000'000};
        nanosleep(&ts, nullptr);
        paused_ms_ += o_.pause_ms;
    }

    // After the regrowth that follows a pause, the next data ops favour the regrown range.
    void after_regrowth(uint64_t size_before) {
        if (!regrow_pending_) return;
        regrow_pending_ = false;
        (void)size_before;
        focus_hi_ = shadow_.size();
        focus_left_ = 12;
    }

    void do_fallocate(uint64_t size, Op op) {
        const bool keep = op == kPunch || rng_.chance(50);
        const uint64_t off = op == kZero && !keep ? pick_off(size + 1) : pick_off(size);
        const uint64_t len = pick_len(o_.max_size - off);
        if (len == 0) {
            begin(describe("%s (no room at 0x%llx)", kOpNames[op], ull(off)));
            return;
        }
        const int mode = op == kPunch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                                      : FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0);
        begin(describe("%s%s 0x%llx+0x%llx size=0x%llx", kOpNames[op],
                       op == kZero && keep ? "(keep-size)" : "", ull(off), ull(len), ull(size)));
        if (fallocate(fd_, mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
            if (errno == EOPNOTSUPP || errno == ENOSYS) {
                note_unsupported(op, "fallocate");
                return;
            }
            fail_errno("fallocate");
        }
        const uint64_t end = keep ? std::min(off + len, size) : off + len;
        if (end > size) set_size(end);
        if (off < end) std::memset(shadow_.data() + off, 0, end - off);
        if (end > size) check_size("after fallocate");
    }

    void note_unsupported(Op op, const char* call) {
        const int e = errno;
        history_.back() += " (unsupported)";
        weight_[op] = 0;
        std::fprintf(stderr, "dataexer: NOTE: %s %s: %s; %s disabled\n", call, kOpNames[op],
                     std::strerror(e), kOpNames[op]);
    }

    void do_copy(uint64_t size) {
        if (size < 2) {
            begin("copy-range (file too small)");
            return;
        }
        const uint64_t len = pick_len(size / 2);
        const uint64_t src = rng_.below(size - len + 1);
        // The destination starts inside the file or at its end (then the copy extends it), and
        // never overlaps the source.
        uint64_t dst = rng_.below(std::min(size, o_.max_size - len) + 1);
        if (dst < src + len && src < dst + len) dst = src + len;  // src + len <= size
        if (dst + len > o_.max_size) {
            begin("copy-range (no room)");
            return;
        }
        begin(describe("copy-range 0x%llx -> 0x%llx +0x%llx size=0x%llx", ull(src), ull(dst),
                       ull(len), ull(size)));
        loff_t in = static_cast<loff_t>(src), out = static_cast<loff_t>(dst);
        uint64_t done = 0;
        while (done < len) {
            const ssize_t n = copy_file_range(fd_, &in, fd_, &out, len - done, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && done == 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EXDEV)) {
                note_unsupported(kCopy, "copy_file_range");
                return;
            }
            if (n < 0) fail_errno("copy_file_range");
            if (n == 0)
                fail(describe("copy_file_range stopped after %llu of %llu bytes", ull(done),
                              ull(len)));
            done += static_cast<uint64_t>(n);
        }
        if (dst + len > size) set_size(dst + len);
        std::memmove(shadow_.data() + dst, shadow_.data() + src, len);
        if (dst + len > size) check_size("after an extending copy_file_range");
    }

    // The whole file by pread in 1 MiB pieces, and its size.
    void verify(const char* what) {
        begin(describe("%s size=0x%zx", what, shadow_.size()));
        check_size(what);
        buf_.resize(kMiB);
        for (uint64_t off = 0; off < shadow_.size(); off += kMiB) {
            const uint64_t len = std::min<uint64_t>(kMiB, shadow_.size() - off);
            uint64_t got = 0;
            pread_all(buf_.data(), off, len, &got);
            if (got != len)
                fail(describe("pread of 0x%llx+0x%llx returned %llu bytes", ull(off), ull(len),
                              ull(got)));
            check(buf_.data(), off, len, "pread");
        }
    }

    const Options& o_;
    Rng rng_;
    const uint64_t page_;
    std::array<unsigned, kOpCount> weight_{};
    std::vector<uint8_t> shadow_, buf_;
    int fd_ = -1;
    uint64_t op_ = 0;
    std::string current_ = "#0 (start)";
    std::deque<std::string> history_;
    uint64_t paused_ms_ = 0;
    bool regrow_pending_ = false;
    uint64_t regrow_to_ = 0, focus_lo_ = 0, focus_hi_ = 0, focus_left_ = 0;
};

int hash_file(const char* path) {
    const int fd = open(path, O_RDONLY);
    if (fd < 0) {
        std::fprintf(stderr, "dataexer: open %s: %s\n", path, std::strerror(errno));
        return 1;
    }
    std::vector<uint8_t> buf(kMiB);
    uint64_t h = fnv1a(nullptr, 0), size = 0;
    for (;;) {
        const ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::fprintf(stderr, "dataexer: read %s: %s\n", path, std::strerror(errno));
            return 1;
        }
        if (n == 0) break;
        h = fnv1a(buf.data(), static_cast<size_t>(n), h);
        size += static_cast<uint64_t>(n);
    }
    close(fd);
    std::printf("size=%llu hash=%016llx\n", static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(h));
    return 0;
}

Options parse(int argc, char** argv) {
    Options o;
    o.path = argv[2];
    for (int i = 3; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--verbose") {
            o.verbose = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--seed") {
            o.seed = number(v);
        } else if (a == "--ops") {
            o.ops = number(v);
            o.ops_given = true;
        } else if (a == "--duration") {
            o.duration_s = number(v);
        } else if (a == "--max-size") {
            o.max_size = number(v);
        } else if (a == "--max-io") {
            o.max_io = number(v);
        } else if (a == "--pause-ms") {
            o.pause_ms = number(v);
        } else if (a == "--pause-total") {
            o.pause_total_ms = number(v) * 1000;
            o.pause_total_given = true;
        } else if (a == "--history") {
            o.history = static_cast<size_t>(number(v));
        } else if (a == "--progress") {
            o.progress_s = number(v);
        } else if (a == "--disable") {
            std::string list = v;
            for (size_t at = 0; at <= list.size();) {
                const size_t comma = std::min(list.find(',', at), list.size());
                const std::string name = list.substr(at, comma - at);
                const auto it = std::find(kOpNames.begin(), kOpNames.end(), name);
                if (it == kOpNames.end()) {
                    std::fprintf(stderr, "dataexer: no operation '%s' to disable\n", name.c_str());
                    std::exit(2);
                }
                o.disabled[static_cast<size_t>(it - kOpNames.begin())] = true;
                at = comma + 1;
            }
        } else {
            usage();
        }
    }
    if (o.duration_s != 0 && !o.ops_given) o.ops = 0;
    if (o.duration_s != 0 && !o.pause_total_given) o.pause_total_ms = o.duration_s * 100;
    if (o.max_size < 2 * o.max_io || o.max_io == 0) {
        std::fprintf(stderr, "dataexer: --max-size must be at least twice --max-io (>0)\n");
        std::exit(2);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) usage();
    const std::string cmd = argv[1];
    if (cmd == "hash" && argc == 3) return hash_file(argv[2]);
    if (cmd != "run") usage();
    const Options o = parse(argc, argv);
    struct sigaction sa {};
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, nullptr);
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Exerciser x(o);
    return x.run();
}
