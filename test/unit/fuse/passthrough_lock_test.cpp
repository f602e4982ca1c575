// SPDX-License-Identifier: Apache-2.0
// Passthrough POSIX locks follow the guest's lock owner: conflicts between owners, none within
// one, FLUSH and the last RELEASE letting go, no descriptions left behind, the owner cap.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fuse/fd_limits.hpp"
#include "fuse/temp_dir.hpp"
#include "vfsdax/fs/passthrough.hpp"

using namespace vfsdax::fs;
using vfsdax::test::open_fd_count;
using vfsdax::test::TempDir;

namespace {

constexpr uint64_t kToEnd = INT64_MAX;

struct Fixture {
    TempDir dir;
    std::unique_ptr<FileSystem> fs;
    RequestContext ctx;
    NodeId node = 0;

    explicit Fixture(PassthroughOptions options = {}) {
        std::ofstream(dir / "f") << "0123456789";
        options.root = dir.path().string();
        fs = make_passthrough(options).value();
        REQUIRE(fs->init(SessionInfo{}));
        node = lookup("f");
    }
    NodeId lookup(const std::string& name) {
        auto entry = fs->lookup(ctx, FUSE_ROOT_ID, name);
        REQUIRE(entry);
        return entry->nodeid;
    }
    FileHandle open(uint32_t flags = O_RDWR, NodeId at = 0) {
        auto opened = fs->open(ctx, at ? at : node, flags, false);
        REQUIRE(opened);
        return opened->fh;
    }
    Result<void> lock(FileHandle fh, uint64_t owner, uint32_t type, uint64_t start = 0,
                      uint64_t end = kToEnd, NodeId at = 0) {
        return fs->setlk(ctx, at ? at : node, fh, owner, Lock{start, end, type, 0}, false);
    }
    Lock probe(FileHandle fh, uint64_t owner, uint32_t type, uint64_t start = 0,
               uint64_t end = kToEnd) {
        auto conflict = fs->getlk(ctx, node, fh, owner, Lock{start, end, type, 0});
        REQUIRE(conflict);
        return *conflict;
    }
    // Whether a host process could take a write lock on the whole file right now.
    bool host_can_write_lock() {
        const int fd = ::open((dir / "f").c_str(), O_RDWR | O_CLOEXEC);
        REQUIRE(fd >= 0);
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        REQUIRE(::fcntl(fd, F_OFD_GETLK, &fl) == 0);
        ::close(fd);
        return fl.l_type == F_UNLCK;
    }
};

}  // namespace

TEST_CASE("passthrough locks: one owner through two handles never conflicts with itself",
          "[fuse]") {
    Fixture f;
    const FileHandle h1 = f.open();
    const FileHandle h2 = f.open();
    REQUIRE(f.lock(h1, 42, F_WRLCK, 0, 9));
    // The same process locking through another open of the file: POSIX replaces its own lock.
    CHECK(f.lock(h2, 42, F_WRLCK, 0, 9));
    CHECK(f.lock(h2, 42, F_RDLCK, 5, 9));
    CHECK(f.probe(h1, 42, F_WRLCK).type == F_UNLCK);
    // Other owners and host processes see the locks (a write lock on 0-4, a read lock on 5-9).
    const Lock seen = f.probe(h1, 43, F_WRLCK, 0, 4);
    CHECK(seen.type == F_WRLCK);
    CHECK(seen.start == 0);
    CHECK(seen.end == 4);
    CHECK(f.lock(h1, 43, F_RDLCK, 5, 9));
    CHECK_FALSE(f.host_can_write_lock());
}

TEST_CASE("passthrough locks: two owners sharing one handle conflict", "[fuse]") {
    Fixture f;
    const FileHandle h = f.open();
    REQUIRE(f.lock(h, 1, F_WRLCK, 0, 4));
    // After fork both processes use the same open file; only one may hold the write lock.
    CHECK(f.lock(h, 2, F_WRLCK, 0, 4).error() == EAGAIN);
    CHECK(f.lock(h, 2, F_RDLCK, 3, 3).error() == EAGAIN);
    const Lock conflict = f.probe(h, 2, F_RDLCK, 2, 8);
    CHECK(conflict.type == F_WRLCK);
    CHECK(conflict.start == 0);
    CHECK(conflict.end == 4);
    CHECK(f.probe(h, 2, F_WRLCK, 5, kToEnd).type == F_UNLCK);
    CHECK(f.lock(h, 2, F_WRLCK, 5, kToEnd));
    // Unlocking frees the range for the other owner; an owner that never locked unlocks fine.
    REQUIRE(f.lock(h, 1, F_UNLCK, 0, 4));
    CHECK(f.lock(h, 2, F_WRLCK, 0, 4));
    CHECK(f.lock(h, 3, F_UNLCK));
}

TEST_CASE("passthrough locks: a FLUSH drops that owner's locks, whichever handle held them",
          "[fuse]") {
    Fixture f;
    const FileHandle h1 = f.open();
    const FileHandle h2 = f.open(O_RDONLY);
    REQUIRE(f.lock(h1, 1, F_WRLCK, 0, 4));
    REQUIRE(f.lock(h1, 1, F_WRLCK, 10, 20));
    REQUIRE(f.lock(h1, 2, F_RDLCK, 30, 40));
    CHECK(f.lock(h2, 3, F_WRLCK, 0, 4).error() == EAGAIN);
    // Another owner's close leaves owner 1 alone.
    REQUIRE(f.fs->flush(f.ctx, f.node, h1, 2));
    CHECK(f.lock(h2, 3, F_WRLCK, 30, 40));
    CHECK(f.lock(h2, 3, F_WRLCK, 0, 4).error() == EAGAIN);
    // Owner 1 closes its other descriptor of the file: all its locks go.
    REQUIRE(f.fs->flush(f.ctx, f.node, h2, 1));
    CHECK(f.lock(h2, 3, F_WRLCK, 0, 4));
    CHECK(f.lock(h2, 3, F_WRLCK, 10, 20));
    // A forged handle is refused and drops nothing.
    CHECK(f.fs->flush(f.ctx, f.node, 999, 3).error() == EBADF);
    CHECK(f.lock(h1, 1, F_WRLCK, 0, 4).error() == EAGAIN);
}

TEST_CASE("passthrough locks: RELEASE, FORGET and DESTROY leave no descriptions open", "[fuse]") {
    Fixture f;
    f.fs->forget(f.node, 1);
    const std::size_t baseline = open_fd_count();

    SECTION("the last release drops every owner's locks") {
        const NodeId node = f.lookup("f");
        const FileHandle h1 = f.open(O_RDWR, node);
        const FileHandle h2 = f.open(O_RDONLY, node);
        for (uint64_t owner = 1; owner <= 3; ++owner) {
            REQUIRE(f.lock(owner == 3 ? h2 : h1, owner, F_RDLCK, owner, owner, node));
        }
        REQUIRE(f.lock(h1, 4, F_WRLCK, 10, 20, node));
        // The inode, two handles, one description per owner.
        CHECK(open_fd_count() == baseline + 7);
        f.fs->release(f.ctx, node, h1, 0, false, 0);
        // h2 is still open: its process may still hold locks through it.
        CHECK_FALSE(f.host_can_write_lock());
        f.fs->release(f.ctx, node, h2, 0, false, 0);
        CHECK(f.host_can_write_lock());
        f.fs->forget(node, 1);
        CHECK(open_fd_count() == baseline);
    }
    SECTION("a FORGET before the release") {
        const NodeId node = f.lookup("f");
        const FileHandle h = f.open(O_RDWR, node);
        REQUIRE(f.lock(h, 1, F_WRLCK, 0, kToEnd, node));
        f.fs->forget(node, 1);
        CHECK_FALSE(f.host_can_write_lock());
        f.fs->release(f.ctx, node, h, 0, false, 0);
        CHECK(f.host_can_write_lock());
        CHECK(open_fd_count() == baseline);
    }
    SECTION("destroy") {
        const NodeId node = f.lookup("f");
        const FileHandle h = f.open(O_RDWR, node);
        REQUIRE(f.lock(h, 1, F_WRLCK, 0, 4, node));
        REQUIRE(f.lock(h, 2, F_WRLCK, 5, 9, node));
        f.fs->destroy();
        CHECK(f.host_can_write_lock());
        CHECK(open_fd_count() == baseline);
        REQUIRE(f.fs->init(SessionInfo{}));
    }
}

TEST_CASE("passthrough locks: lock owners' descriptions are capped, ENOLCK beyond", "[fuse]") {
    PassthroughOptions options;
    options.max_lock_fds = 2;
    Fixture f(options);
    std::ofstream(f.dir / "g") << "x";
    const NodeId g = f.lookup("g");
    const FileHandle hf = f.open();
    const FileHandle hg = f.open(O_RDWR, g);
    REQUIRE(f.lock(hf, 1, F_RDLCK));
    // One description per owner and file: the same owner on another file takes a second.
    REQUIRE(f.lock(hg, 1, F_RDLCK, 0, kToEnd, g));
    CHECK(f.lock(hf, 2, F_RDLCK).error() == ENOLCK);
    // Owner 1 keeps its description for more locks; a query or an unlock takes none.
    CHECK(f.lock(hf, 1, F_WRLCK, 3, 4));
    CHECK(f.probe(hf, 2, F_RDLCK).type == F_WRLCK);
    CHECK(f.lock(hf, 2, F_UNLCK));
    // Its close frees the slot.
    REQUIRE(f.fs->flush(f.ctx, f.node, hf, 1));
    CHECK(f.lock(hf, 2, F_RDLCK));
}

TEST_CASE("passthrough locks: a file the host opens read-only takes read locks only", "[fuse]") {
    TempDir outer;
    const std::string mnt = (outer / "mnt").string();
    REQUIRE(::mkdir(mnt.c_str(), 0755) == 0);
    if (::mount("vfsdax-test", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
        WARN("cannot mount a tmpfs here (" << std::strerror(errno) << "): not checked");
        return;
    }
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{mnt};
    std::ofstream(mnt + "/f") << "x";
    REQUIRE(::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);

    auto fs = make_passthrough({.root = mnt}).value();
    REQUIRE(fs->init(SessionInfo{}));
    const RequestContext ctx;
    const NodeId node = fs->lookup(ctx, FUSE_ROOT_ID, "f")->nodeid;
    const FileHandle fh = fs->open(ctx, node, O_RDONLY, false)->fh;
    CHECK(fs->setlk(ctx, node, fh, 1, Lock{0, kToEnd, F_RDLCK, 0}, false));
    // As fcntl(2) on a read-only descriptor.
    CHECK(fs->setlk(ctx, node, fh, 1, Lock{0, kToEnd, F_WRLCK, 0}, false).error() == EBADF);
    // Another owner's description cannot be opened for writing at all.
    CHECK(fs->setlk(ctx, node, fh, 2, Lock{0, kToEnd, F_WRLCK, 0}, false).error() == EROFS);
    CHECK(fs->getlk(ctx, node, fh, 2, Lock{0, kToEnd, F_WRLCK, 0})->type == F_RDLCK);
    fs->release(ctx, node, fh, 0, false, 0);
    fs->destroy();
}
