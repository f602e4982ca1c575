// SPDX-License-Identifier: Apache-2.0
// Escape battery for the passthrough backend: every attempt a hostile guest can make to reach
// a sentinel file outside the shared directory must fail, and the sentinel must show it was
// never read, written, linked, renamed, chmod'ed or stat'ed through the backend.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuse/fd_limits.hpp"
#include "vfsdax/fs/passthrough.hpp"

namespace {

using namespace vfsdax::fs;
using vfsdax::test::open_fd_count;
using vfsdax::test::SoftFdLimit;
namespace stdfs = std::filesystem;

constexpr char kSecret[] = "SECRET-CONTENT";
constexpr time_t kOldTime = 946684800;  // 2000-01-01: any read through relatime bumps atime

bool same_time(const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// base/            (mtime watched: nothing may be created beside the root)
//   root/          the shared directory
//   outside/       (mtime watched, listing watched)
//     secret       the sentinel: content, nlink, times, ctime and xattrs watched
struct Escape {
    std::string base, root, outside, secret;
    struct stat secret_st {
    }, outside_st{}, base_st{};
    std::unique_ptr<FileSystem> fs;
    RequestContext ctx;

    explicit Escape(PassthroughOptions options = {}) {
        char tmpl[] = "/tmp/vfsdax-escape.XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        base = tmpl;
        root = base + "/root";
        outside = base + "/outside";
        secret = outside + "/secret";
        REQUIRE(::mkdir(root.c_str(), 0777) == 0);
        REQUIRE(::mkdir(outside.c_str(), 0777) == 0);
        std::ofstream(secret) << kSecret;
        REQUIRE(::chmod(secret.c_str(), 0666) == 0);
        if (::geteuid() == 0) {
            REQUIRE(::setxattr(secret.c_str(), "trusted.v", "S", 1, 0) == 0);
        }
        const timespec old[2] = {{kOldTime, 0}, {kOldTime, 0}};
        REQUIRE(::utimensat(AT_FDCWD, secret.c_str(), old, 0) == 0);
        REQUIRE(::utimensat(AT_FDCWD, outside.c_str(), old, 0) == 0);
        REQUIRE(::utimensat(AT_FDCWD, base.c_str(), old, 0) == 0);
        REQUIRE(::lstat(secret.c_str(), &secret_st) == 0);
        REQUIRE(::lstat(outside.c_str(), &outside_st) == 0);
        REQUIRE(::lstat(base.c_str(), &base_st) == 0);

        options.root = root;
        auto made = make_passthrough(options);
        REQUIRE(made.has_value());
        fs = std::move(*made);
        REQUIRE(fs->init(SessionInfo{}));
    }
    ~Escape() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }

    std::string in_root(const std::string& name) const { return root + "/" + name; }

    // The backend must never report an inode outside the root.
    bool foreign(const struct stat& st) const {
        return st.st_ino == secret_st.st_ino || st.st_ino == outside_st.st_ino ||
               st.st_ino == base_st.st_ino;
    }
    Entry lookup(const std::string& name, NodeId parent = FUSE_ROOT_ID) {
        auto e = fs->lookup(ctx, parent, name);
        REQUIRE(e.has_value());
        CHECK_FALSE(foreign(e->attr.st));
        return *e;
    }

    // Stats first (reading the content would bump atime), then the content without atime.
    void verify(bool base_may_change = false) const {
        struct stat now {};
        REQUIRE(::lstat(secret.c_str(), &now) == 0);
        CHECK(now.st_ino == secret_st.st_ino);
        CHECK(now.st_nlink == 1);
        CHECK(now.st_size == static_cast<off_t>(sizeof(kSecret) - 1));
        CHECK(now.st_mode == secret_st.st_mode);
        CHECK(now.st_uid == secret_st.st_uid);
        CHECK(same_time(now.st_atim, secret_st.st_atim));  // never read
        CHECK(same_time(now.st_mtim, secret_st.st_mtim));  // never written
        CHECK(same_time(now.st_ctim, secret_st.st_ctim));  // never linked/renamed/chmod'ed
        struct stat dir {};
        REQUIRE(::lstat(outside.c_str(), &dir) == 0);
        CHECK(same_time(dir.st_mtim, outside_st.st_mtim));  // nothing created or removed there
        std::vector<std::string> names;
        for (const auto& e : stdfs::directory_iterator(outside))
            names.push_back(e.path().filename());
        CHECK(names == std::vector<std::string>{"secret"});
        if (!base_may_change) {
            REQUIRE(::lstat(base.c_str(), &dir) == 0);
            CHECK(same_time(dir.st_mtim, base_st.st_mtim));
        }
        const int fd = ::open(secret.c_str(), O_RDONLY | O_NOATIME);
        REQUIRE(fd >= 0);
        char buf[64] = {};
        CHECK(::read(fd, buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(kSecret) - 1));
        ::close(fd);
        CHECK(std::string(buf) == kSecret);
        if (::geteuid() == 0) {
            char v[8] = {};
            CHECK(::getxattr(secret.c_str(), "trusted.v", v, sizeof(v)) == 1);
            CHECK(::getxattr(secret.c_str(), "trusted.w", v, sizeof(v)) < 0);
        }
    }

    // Reads everything the handle gives; must never be the secret.
    std::string read_all(NodeId node, FileHandle fh) {
        char buf[256] = {};
        iovec v{buf, sizeof(buf)};
        auto n = fs->read(ctx, node, fh, 0, {&v, 1});
        REQUIRE(n.has_value());
        return std::string(buf, *n);
    }
};

// The error of a result, 0 for a success (error() of a success is undefined).
template <typename T>
int err(const Result<T>& r) {
    return r ? 0 : r.error();
}

// What a VMM still needs after a guest flooded its share: eventfds (ioeventfds, irqfds).
bool process_can_open(int count) {
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
        const int fd = ::eventfd(0, EFD_CLOEXEC);
        if (fd < 0) break;
        fds.push_back(fd);
    }
    for (int fd : fds) ::close(fd);
    return fds.size() == static_cast<std::size_t>(count);
}

void host_write(const std::string& path, const std::string& data) {
    std::ofstream(path) << data;
}

struct ListSink : DirSink {
    std::vector<std::string> names;
    std::vector<uint64_t> inos;
    std::vector<std::optional<Entry>> entries;
    bool add(const DirEntry& d, const Entry* e) override {
        names.emplace_back(d.name);
        inos.push_back(d.ino);
        entries.push_back(e ? std::optional<Entry>(*e) : std::nullopt);
        return true;
    }
};

}  // namespace

// --- names -------------------------------------------------------------------------------

TEST_CASE("escape 01: '..' of the root is the root", "[fuse][escape]") {
    Escape x;
    Entry up = x.lookup("..");
    CHECK(up.nodeid == FUSE_ROOT_ID);
    Entry upup = x.lookup("..", up.nodeid);
    CHECK(upup.nodeid == FUSE_ROOT_ID);
    x.verify();
}

TEST_CASE("escape 02: '..' chains from a subdirectory stop at the root", "[fuse][escape]") {
    Escape x;
    REQUIRE(::mkdir(x.in_root("a").c_str(), 0755) == 0);
    REQUIRE(::mkdir(x.in_root("a/b").c_str(), 0755) == 0);
    Entry a = x.lookup("a");
    Entry b = x.lookup("b", a.nodeid);
    NodeId cur = b.nodeid;
    for (int i = 0; i < 5; ++i) cur = x.lookup("..", cur).nodeid;
    CHECK(cur == FUSE_ROOT_ID);
    x.verify();
}

TEST_CASE("escape 03: a relative path with '/' as a name", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, "../outside/secret").error() == EINVAL);
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, "../outside").error() == EINVAL);
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, "./../outside").error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 04: an absolute path as a name", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, x.secret).error() == EINVAL);
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, "/").error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 05: names with an embedded NUL", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, std::string("..\0/outside", 11)).error() == EINVAL);
    CHECK(x.fs->mkdir(x.ctx, FUSE_ROOT_ID, std::string("a\0b", 3), 0755, 0).error() == EINVAL);
    CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, std::string("..\0", 3), 0644, 0, O_RDWR).error() ==
          EINVAL);
    x.verify();
}

TEST_CASE("escape 06: a name one byte over NAME_MAX", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->lookup(x.ctx, FUSE_ROOT_ID, std::string(256, 'a')).error() == ENAMETOOLONG);
    CHECK(x.fs->mkdir(x.ctx, FUSE_ROOT_ID, std::string(256, 'a'), 0755, 0).error() == ENAMETOOLONG);
    x.verify();
}

TEST_CASE("escape 07: a huge name made of '../' repeats", "[fuse][escape]") {
    Escape x;
    std::string huge;
    while (huge.size() < (1 << 20)) huge += "../";
    huge += "outside/secret";
    auto r = x.fs->lookup(x.ctx, FUSE_ROOT_ID, huge);
    REQUIRE_FALSE(r.has_value());
    CHECK((r.error() == ENAMETOOLONG || r.error() == EINVAL));
    x.verify();
}

TEST_CASE("escape 08: '.' and '..' as names to create, remove or rename", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->mkdir(x.ctx, FUSE_ROOT_ID, "..", 0755, 0).error() == EINVAL);
    CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, ".", 0644, 0, O_RDWR).error() == EINVAL);
    CHECK(x.fs->unlink(x.ctx, FUSE_ROOT_ID, "..").error() == EINVAL);
    CHECK(x.fs->rmdir(x.ctx, FUSE_ROOT_ID, "..").error() == EINVAL);
    CHECK(x.fs->rmdir(x.ctx, FUSE_ROOT_ID, ".").error() == EINVAL);
    CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "..", FUSE_ROOT_ID, "x", 0).error() == EINVAL);
    CHECK(x.fs->symlink(x.ctx, FUSE_ROOT_ID, "..", "/").error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 09: unlink and rmdir through a traversing name", "[fuse][escape]") {
    Escape x;
    CHECK(x.fs->unlink(x.ctx, FUSE_ROOT_ID, "../outside/secret").error() == EINVAL);
    CHECK(x.fs->rmdir(x.ctx, FUSE_ROOT_ID, "../outside").error() == EINVAL);
    x.verify();
}

// --- symlinks ----------------------------------------------------------------------------

TEST_CASE("escape 10: an absolute symlink to the sentinel is never followed", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("abs").c_str()) == 0);
    Entry l = x.lookup("abs");
    CHECK(S_ISLNK(l.attr.st.st_mode));
    CHECK(x.fs->open(x.ctx, l.nodeid, O_RDONLY, false).error() == ELOOP);
    CHECK(x.fs->open(x.ctx, l.nodeid, O_RDWR | O_TRUNC, false).error() == ELOOP);
    auto attr = x.fs->getattr(x.ctx, l.nodeid, std::nullopt);
    REQUIRE(attr.has_value());
    CHECK_FALSE(x.foreign(attr->st));
    x.verify();
}

TEST_CASE("escape 11: a relative symlink climbing out is never followed", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink("../outside/secret", x.in_root("rel").c_str()) == 0);
    Entry l = x.lookup("rel");
    CHECK(x.fs->open(x.ctx, l.nodeid, O_RDONLY, false).error() == ELOOP);
    CHECK(x.fs->opendir(x.ctx, l.nodeid, 0).error() == ENOTDIR);
    auto target = x.fs->readlink(x.ctx, l.nodeid);
    REQUIRE(target.has_value());
    CHECK(*target == "../outside/secret");
    x.verify();
}

TEST_CASE("escape 12: a symlink to an outside directory cannot be walked", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink("../outside", x.in_root("dirlink").c_str()) == 0);
    Entry l = x.lookup("dirlink");
    CHECK(x.fs->lookup(x.ctx, l.nodeid, "secret").error() == ENOTDIR);
    CHECK(x.fs->create(x.ctx, l.nodeid, "new", 0644, 0, O_RDWR).error() == ENOTDIR);
    CHECK(x.fs->mkdir(x.ctx, l.nodeid, "new", 0755, 0).error() == ENOTDIR);
    x.verify();
}

TEST_CASE("escape 13: a symlink loop neither hangs nor escapes", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink("b", x.in_root("a").c_str()) == 0);
    REQUIRE(::symlink("a", x.in_root("b").c_str()) == 0);
    Entry a = x.lookup("a");
    CHECK(x.fs->open(x.ctx, a.nodeid, O_RDONLY, false).error() == ELOOP);
    CHECK(x.fs->lookup(x.ctx, a.nodeid, "x").error() == ENOTDIR);
    CHECK(x.fs->readlink(x.ctx, a.nodeid).value_or("") == "b");
    x.verify();
}

TEST_CASE("escape 14: CREATE on a name that is a symlink to the sentinel", "[fuse][escape]") {
    Escape x;
    auto l = x.fs->symlink(x.ctx, FUSE_ROOT_ID, "g", x.secret);
    REQUIRE(l.has_value());
    CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, "g", 0644, 0, O_RDWR | O_CREAT | O_TRUNC).error() ==
          ELOOP);
    CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, "g", 0644, 0, O_RDWR | O_CREAT | O_EXCL).error() ==
          EEXIST);
    x.verify();
}

TEST_CASE("escape 15: CREATE through a dangling symlink pointing outside", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink((x.outside + "/planted").c_str(), x.in_root("dang").c_str()) == 0);
    auto r = x.fs->create(x.ctx, FUSE_ROOT_ID, "dang", 0644, 0, O_WRONLY | O_CREAT);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == ELOOP);
    CHECK(x.fs->mknod(x.ctx, FUSE_ROOT_ID, "dang", S_IFREG | 0644, 0, 0).error() == EEXIST);
    CHECK(x.fs->mkdir(x.ctx, FUSE_ROOT_ID, "dang", 0755, 0).error() == EEXIST);
    CHECK(::access((x.outside + "/planted").c_str(), F_OK) != 0);
    x.verify();
}

TEST_CASE("escape 16: a file swapped for a symlink between LOOKUP and OPEN", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "inside");
    Entry f = x.lookup("f");
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("tmp").c_str()) == 0);
    REQUIRE(::rename(x.in_root("tmp").c_str(), x.in_root("f").c_str()) == 0);
    auto o = x.fs->open(x.ctx, f.nodeid, O_RDWR, false);
    REQUIRE(o.has_value());
    CHECK(x.read_all(f.nodeid, o->fh) == "inside");
    char junk[] = "JUNK";
    iovec v{junk, 4};
    REQUIRE(x.fs->write(x.ctx, f.nodeid, o->fh, 0, {&v, 1}, false));
    x.verify();
}

TEST_CASE("escape 17: a directory swapped for a symlink between LOOKUPs", "[fuse][escape]") {
    Escape x;
    REQUIRE(::mkdir(x.in_root("d").c_str(), 0755) == 0);
    Entry d = x.lookup("d");
    REQUIRE(::rename(x.in_root("d").c_str(), x.in_root("d2").c_str()) == 0);
    REQUIRE(::symlink(x.outside.c_str(), x.in_root("d").c_str()) == 0);
    CHECK(x.fs->lookup(x.ctx, d.nodeid, "secret").error() == ENOENT);
    auto c = x.fs->create(x.ctx, d.nodeid, "secret", 0644, 0, O_RDWR | O_CREAT);
    REQUIRE(c.has_value());
    CHECK(::access(x.in_root("d2/secret").c_str(), F_OK) == 0);
    CHECK(x.fs->unlink(x.ctx, d.nodeid, "secret"));
    x.verify();
}

TEST_CASE("escape 18: a swap between LOOKUP and OPEN for a handle-held inode", "[fuse][escape]") {
    PassthroughOptions options;
    options.max_inode_fds = 1;  // everything but the root is held as a file handle
    Escape x(options);
    host_write(x.in_root("f"), "inside");
    REQUIRE(::link(x.in_root("f").c_str(), x.in_root("keep").c_str()) == 0);
    Entry f = x.lookup("f");
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("tmp").c_str()) == 0);
    REQUIRE(::rename(x.in_root("tmp").c_str(), x.in_root("f").c_str()) == 0);
    auto o = x.fs->open(x.ctx, f.nodeid, O_RDONLY, false);
    REQUIRE(o.has_value());
    CHECK(x.read_all(f.nodeid, o->fh) == "inside");
    x.verify();
}

TEST_CASE("escape 19: symlink through /proc/self/root", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(("/proc/self/root" + x.secret).c_str(), x.in_root("pm").c_str()) == 0);
    Entry l = x.lookup("pm");
    CHECK(x.fs->open(x.ctx, l.nodeid, O_RDONLY, false).error() == ELOOP);
    CHECK(x.fs->lookup(x.ctx, l.nodeid, "x").error() == ENOTDIR);
    x.verify();
}

TEST_CASE("escape 20: symlink to a /proc/self/fd magic link of an outside dir", "[fuse][escape]") {
    Escape x;
    const int outside_fd = ::open(x.outside.c_str(), O_PATH | O_DIRECTORY);
    REQUIRE(outside_fd >= 0);
    const std::string magic = "/proc/self/fd/" + std::to_string(outside_fd);
    REQUIRE(::symlink(magic.c_str(), x.in_root("pfd").c_str()) == 0);
    Entry l = x.lookup("pfd");
    CHECK(x.fs->lookup(x.ctx, l.nodeid, "secret").error() == ENOTDIR);
    CHECK(x.fs->opendir(x.ctx, l.nodeid, 0).error() == ENOTDIR);
    CHECK(x.fs->open(x.ctx, l.nodeid, O_RDONLY, false).error() == ELOOP);
    ::close(outside_fd);
    x.verify();
}

TEST_CASE("escape 21: a guest-made symlink to /proc/self/cwd and /proc/1/root", "[fuse][escape]") {
    Escape x;
    auto cwd = x.fs->symlink(x.ctx, FUSE_ROOT_ID, "cwd", "/proc/self/cwd");
    REQUIRE(cwd.has_value());
    auto init_root = x.fs->symlink(x.ctx, FUSE_ROOT_ID, "r1", "/proc/1/root");
    REQUIRE(init_root.has_value());
    CHECK(x.fs->lookup(x.ctx, cwd->nodeid, "outside").error() == ENOTDIR);
    CHECK(x.fs->opendir(x.ctx, init_root->nodeid, 0).error() == ENOTDIR);
    x.verify();
}

// --- operations aimed through a symlink node ------------------------------------------------

TEST_CASE("escape 22: getxattr/listxattr on a symlink to the sentinel", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l").c_str()) == 0);
    Entry l = x.lookup("l");
    std::byte buf[64];
    CHECK(x.fs->getxattr(x.ctx, l.nodeid, "trusted.v", buf).error() == ENODATA);
    auto list = x.fs->listxattr(x.ctx, l.nodeid, buf);
    REQUIRE(list.has_value());
    const std::string names(reinterpret_cast<char*>(buf), *list);
    CHECK(names.find("trusted.v") == std::string::npos);
    x.verify();
}

TEST_CASE("escape 23: setxattr/removexattr on a symlink to the sentinel", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l").c_str()) == 0);
    Entry l = x.lookup("l");
    const char w = 'W';
    (void)x.fs->setxattr(x.ctx, l.nodeid, "trusted.w", std::as_bytes(std::span(&w, 1)), 0);
    (void)x.fs->setxattr(x.ctx, l.nodeid, "user.w", std::as_bytes(std::span(&w, 1)), 0);
    CHECK_FALSE(x.fs->removexattr(x.ctx, l.nodeid, "trusted.v").has_value());
    x.verify();
}

TEST_CASE("escape 24: truncate and chmod aimed through a symlink", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l").c_str()) == 0);
    Entry l = x.lookup("l");
    SetAttrIn in;
    in.valid = FATTR_SIZE;
    in.size = 0;
    CHECK(x.fs->setattr(x.ctx, l.nodeid, in).error() == EINVAL);
    in.valid = FATTR_MODE;
    in.mode = 0777;
    CHECK(x.fs->setattr(x.ctx, l.nodeid, in).error() == EOPNOTSUPP);
    x.verify();
}

TEST_CASE("escape 25: chown and utimes aimed through a symlink change the link only",
          "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l").c_str()) == 0);
    Entry l = x.lookup("l");
    SetAttrIn in;
    in.valid = FATTR_ATIME | FATTR_MTIME;
    in.atime = {12345, 0};
    in.mtime = {12345, 0};
    auto attr = x.fs->setattr(x.ctx, l.nodeid, in);
    REQUIRE(attr.has_value());
    CHECK(attr->st.st_mtim.tv_sec == 12345);
    CHECK_FALSE(x.foreign(attr->st));
    if (::geteuid() == 0) {
        in = {};
        in.valid = FATTR_UID | FATTR_GID;
        in.uid = 777;
        in.gid = 777;
        REQUIRE(x.fs->setattr(x.ctx, l.nodeid, in));
        struct stat st {};
        REQUIRE(::lstat(x.in_root("l").c_str(), &st) == 0);
        CHECK(st.st_uid == 777u);
    }
    x.verify();
}

TEST_CASE("escape 26: LINK of a symlink node links the symlink, not its target", "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l").c_str()) == 0);
    Entry l = x.lookup("l");
    auto hl = x.fs->link(x.ctx, l.nodeid, FUSE_ROOT_ID, "hl");
    REQUIRE(hl.has_value());
    CHECK(S_ISLNK(hl->attr.st.st_mode));
    struct stat st {};
    REQUIRE(::lstat(x.in_root("hl").c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    x.verify();
}

TEST_CASE("escape 27: LINK, RENAME and lookups with forged node ids", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    const NodeId forged[] = {0, 2, 0xdeadbeef, UINT64_MAX, x.secret_st.st_ino};
    for (NodeId id : forged) {
        INFO("node id " << id);
        CHECK(x.fs->link(x.ctx, id, FUSE_ROOT_ID, "hl").error() == ENOENT);
        CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "f", id, "f", 0).error() == ENOENT);
        CHECK(x.fs->lookup(x.ctx, id, "secret").error() == ENOENT);
        CHECK(x.fs->getattr(x.ctx, id, std::nullopt).error() == ENOENT);
        CHECK(x.fs->open(x.ctx, id, O_RDONLY, false).error() == ENOENT);
    }
    x.verify();
}

TEST_CASE("escape 28: LINK to a traversing new name", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    Entry f = x.lookup("f");
    CHECK(x.fs->link(x.ctx, f.nodeid, FUSE_ROOT_ID, "../outside/hl").error() == EINVAL);
    CHECK(x.fs->link(x.ctx, f.nodeid, FUSE_ROOT_ID, x.outside + "/hl").error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 29: RENAME out of the root by a traversing name", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "f", FUSE_ROOT_ID, "../outside/f", 0).error() ==
          EINVAL);
    CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "f", FUSE_ROOT_ID, "../f", RENAME_NOREPLACE).error() ==
          EINVAL);
    CHECK(
        x.fs->rename(x.ctx, FUSE_ROOT_ID, "../outside/secret", FUSE_ROOT_ID, "stolen", 0).error() ==
        EINVAL);
    CHECK(::access(x.in_root("f").c_str(), F_OK) == 0);
    x.verify();
}

TEST_CASE("escape 30: RENAME_EXCHANGE with a symlink pointing outside", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    REQUIRE(::symlink(x.outside.c_str(), x.in_root("ls").c_str()) == 0);
    REQUIRE(x.fs->rename(x.ctx, FUSE_ROOT_ID, "f", FUSE_ROOT_ID, "ls", RENAME_EXCHANGE));
    Entry f = x.lookup("f");
    CHECK(S_ISLNK(f.attr.st.st_mode));
    CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "ls", f.nodeid, "in", 0).error() == ENOTDIR);
    x.verify();
}

TEST_CASE("escape 31: RENAME of the root's '..' entry", "[fuse][escape]") {
    Escape x;
    Entry up = x.lookup("..");
    CHECK(x.fs->rename(x.ctx, up.nodeid, "..", FUSE_ROOT_ID, "parent", 0).error() == EINVAL);
    CHECK(x.fs->rename(x.ctx, FUSE_ROOT_ID, "root", FUSE_ROOT_ID, "x", 0).error() == ENOENT);
    x.verify();
}

// --- special files ----------------------------------------------------------------------

// Whether this process may create device nodes (CAP_MKNOD in its effective set).
bool may_mknod() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("CapEff:", 0) == 0) {
            return (std::stoull(line.substr(7), nullptr, 16) >> CAP_MKNOD) & 1;
        }
    }
    return false;
}

TEST_CASE("escape 32: device nodes the guest makes are never opened", "[fuse][escape]") {
    Escape x;
    // Made where the host lets the server (CAP_MKNOD), as virtiofsd does; a guest that could
    // open one through the server would reach the host's device (1:1 is /dev/mem).
    auto mem = x.fs->mknod(x.ctx, FUSE_ROOT_ID, "mem", S_IFCHR | 0666, makedev(1, 1), 0);
    if (may_mknod()) {
        REQUIRE(mem.has_value());
        CHECK(S_ISCHR(mem->attr.st.st_mode));
        CHECK(mem->attr.st.st_rdev == makedev(1, 1));
        CHECK(x.fs->open(x.ctx, mem->nodeid, O_RDWR, false).error() == ENXIO);
        CHECK(x.fs->open(x.ctx, mem->nodeid, O_RDONLY, false).error() == ENXIO);
        CHECK(x.fs->extents(x.ctx, mem->nodeid, std::nullopt, 0, 4096, false,
                            [](std::span<const FileExtent>) -> Result<void> { return {}; })
                  .error() == EINVAL);
        // CREATE of the existing name does not open it either.
        CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, "mem", 0644, 0, O_RDWR).error() == ENXIO);
    } else {
        CHECK(mem.error() == EPERM);
        WARN("no CAP_MKNOD: device nodes are refused by the host, not opened: not checked");
    }
    // Turned off: only the whiteout (0:0), which the host lets anyone create.
    Escape off(PassthroughOptions{.root = {}, .device_nodes = false});
    CHECK(off.fs->mknod(off.ctx, FUSE_ROOT_ID, "null", S_IFCHR | 0666, makedev(1, 3), 0).error() ==
          EPERM);
    CHECK(off.fs->mknod(off.ctx, FUSE_ROOT_ID, "sda", S_IFBLK | 0666, makedev(8, 0), 0).error() ==
          EPERM);
    auto whiteout = off.fs->mknod(off.ctx, FUSE_ROOT_ID, "wh", S_IFCHR, 0, 0);
    REQUIRE(whiteout.has_value());
    CHECK(whiteout->attr.st.st_rdev == 0);
    CHECK(off.fs->open(off.ctx, whiteout->nodeid, O_RDONLY, false).error() == ENXIO);
    if (::geteuid() == 0) {
        // One the host put there (/dev/null's numbers) is still not opened.
        REQUIRE(::mknod(x.in_root("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
        Entry n = x.lookup("null");
        CHECK(x.fs->open(x.ctx, n.nodeid, O_RDWR, false).error() == ENXIO);
    }
    x.verify();
    off.verify();
}

TEST_CASE("escape 33: a fifo is not opened (no hang)", "[fuse][escape]") {
    Escape x;
    REQUIRE(::mkfifo(x.in_root("p").c_str(), 0666) == 0);
    Entry p = x.lookup("p");
    CHECK(x.fs->open(x.ctx, p.nodeid, O_RDONLY, false).error() == ENXIO);
    CHECK(x.fs->open(x.ctx, p.nodeid, O_WRONLY, false).error() == ENXIO);
    // CREATE of an existing fifo does not open it either.
    CHECK(x.fs->create(x.ctx, FUSE_ROOT_ID, "p", 0644, 0, O_RDONLY | O_CREAT).error() == ENXIO);
    x.verify();
}

// --- listings ----------------------------------------------------------------------------

TEST_CASE("escape 34: the root's '..' entry in READDIR is the root", "[fuse][escape]") {
    Escape x;
    auto dh = x.fs->opendir(x.ctx, FUSE_ROOT_ID, 0);
    REQUIRE(dh.has_value());
    ListSink sink;
    REQUIRE(x.fs->readdir(x.ctx, FUSE_ROOT_ID, dh->fh, 0, sink));
    struct stat root {};
    REQUIRE(::lstat(x.root.c_str(), &root) == 0);
    for (std::size_t i = 0; i < sink.names.size(); ++i) {
        CHECK(sink.inos[i] != x.base_st.st_ino);
        if (sink.names[i] == "..") CHECK(sink.inos[i] == root.st_ino);
    }
    x.verify();
}

TEST_CASE("escape 35: READDIRPLUS of symlinks pointing outside reports the links",
          "[fuse][escape]") {
    Escape x;
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("l1").c_str()) == 0);
    REQUIRE(::symlink("../outside", x.in_root("l2").c_str()) == 0);
    auto dh = x.fs->opendir(x.ctx, FUSE_ROOT_ID, 0);
    REQUIRE(dh.has_value());
    ListSink sink;
    REQUIRE(x.fs->readdirplus(x.ctx, FUSE_ROOT_ID, dh->fh, 0, sink));
    int links = 0;
    for (const auto& e : sink.entries) {
        if (!e) continue;
        CHECK_FALSE(x.foreign(e->attr.st));
        links += S_ISLNK(e->attr.st.st_mode) ? 1 : 0;
    }
    CHECK(links == 2);
    x.verify();
}

TEST_CASE("escape 36: READDIR with a guest-chosen offset stays in the directory",
          "[fuse][escape]") {
    Escape x;
    auto dh = x.fs->opendir(x.ctx, FUSE_ROOT_ID, 0);
    REQUIRE(dh.has_value());
    for (uint64_t off : {uint64_t{1}, uint64_t{0x7fffffff}, uint64_t{INT64_MAX}, UINT64_MAX}) {
        ListSink sink;
        (void)x.fs->readdir(x.ctx, FUSE_ROOT_ID, dh->fh, off, sink);
        for (uint64_t ino : sink.inos) {
            CHECK(ino != x.secret_st.st_ino);
            CHECK(ino != x.base_st.st_ino);
        }
    }
    x.verify();
}

// --- host-side moves -----------------------------------------------------------------------

TEST_CASE("escape 37: '..' of a directory the host moved out of the root", "[fuse][escape]") {
    Escape x;
    REQUIRE(::mkdir(x.in_root("sub").c_str(), 0755) == 0);
    Entry sub = x.lookup("sub");
    REQUIRE(::rename(x.in_root("sub").c_str(), (x.base + "/moved").c_str()) == 0);
    auto up = x.fs->lookup(x.ctx, sub.nodeid, "..");
    REQUIRE_FALSE(up.has_value());
    CHECK(up.error() == ENOENT);
    x.verify(true);
}

// The attack class: a directory node the guest holds, moved out of the share by the host, must
// stop being a directory of the share for every operation that reaches into it.
TEST_CASE("escape 43: a directory the host moved out of the root is no longer reached",
          "[fuse][escape]") {
    Escape x;
    REQUIRE(::mkdir(x.in_root("sub").c_str(), 0755) == 0);
    REQUIRE(::mkdir(x.in_root("sub/deep").c_str(), 0755) == 0);
    host_write(x.in_root("sub/hostdata"), "host-data");
    host_write(x.in_root("inside"), "i");
    Entry sub = x.lookup("sub");
    Entry deep = x.lookup("deep", sub.nodeid);
    Entry inside = x.lookup("inside");
    auto dh = x.fs->opendir(x.ctx, sub.nodeid, 0);
    REQUIRE(dh.has_value());
    const std::string moved = x.base + "/moved";
    REQUIRE(::rename(x.in_root("sub").c_str(), moved.c_str()) == 0);
    struct stat moved_before {};
    REQUIRE(::lstat(moved.c_str(), &moved_before) == 0);

    for (NodeId dir : {sub.nodeid, deep.nodeid}) {
        CHECK(err(x.fs->lookup(x.ctx, dir, "hostdata")) == ENOENT);
        CHECK(err(x.fs->lookup(x.ctx, dir, ".")) == ENOENT);
        CHECK(err(x.fs->opendir(x.ctx, dir, 0)) == ENOENT);
        CHECK(err(x.fs->create(x.ctx, dir, "guest_was_here", 0644, 0, O_RDWR)) == ENOENT);
        CHECK(err(x.fs->mkdir(x.ctx, dir, "d", 0755, 0)) == ENOENT);
        CHECK(err(x.fs->mknod(x.ctx, dir, "n", S_IFREG | 0644, 0, 0)) == ENOENT);
        CHECK(err(x.fs->symlink(x.ctx, dir, "s", "t")) == ENOENT);
        CHECK(err(x.fs->link(x.ctx, inside.nodeid, dir, "l")) == ENOENT);
        CHECK(err(x.fs->tmpfile(x.ctx, dir, 0644, 0, O_RDWR)) == ENOENT);
        CHECK(err(x.fs->unlink(x.ctx, dir, "hostdata")) == ENOENT);
        CHECK(err(x.fs->rmdir(x.ctx, dir, "deep")) == ENOENT);
        CHECK(err(x.fs->rename(x.ctx, FUSE_ROOT_ID, "inside", dir, "stolen", 0)) == ENOENT);
        CHECK(err(x.fs->rename(x.ctx, dir, "hostdata", FUSE_ROOT_ID, "taken", 0)) == ENOENT);
    }
    // A handle opened before the move lists nothing of the new surroundings.
    ListSink names;
    CHECK(err(x.fs->readdir(x.ctx, sub.nodeid, dh->fh, 0, names)) == ENOENT);
    ListSink plus;
    CHECK(err(x.fs->readdirplus(x.ctx, sub.nodeid, dh->fh, 0, plus)) == ENOENT);
    CHECK(names.names.empty());
    CHECK(plus.names.empty());

    std::vector<std::string> listing;
    for (const auto& e : stdfs::directory_iterator(moved)) listing.push_back(e.path().filename());
    std::sort(listing.begin(), listing.end());
    CHECK(listing == std::vector<std::string>{"deep", "hostdata"});
    struct stat moved_after {};
    REQUIRE(::lstat(moved.c_str(), &moved_after) == 0);
    CHECK(same_time(moved_after.st_mtim, moved_before.st_mtim));
    CHECK(::access(x.in_root("inside").c_str(), F_OK) == 0);

    // Moved back, it is the share's again: the check is made at each use, not remembered.
    REQUIRE(::rename(moved.c_str(), x.in_root("back").c_str()) == 0);
    Entry data = x.lookup("hostdata", sub.nodeid);
    CHECK(data.attr.st.st_size == 9);
    CHECK(x.fs->readdir(x.ctx, sub.nodeid, dh->fh, 0, names).has_value());
    CHECK(x.fs->mkdir(x.ctx, deep.nodeid, "d", 0755, 0).has_value());
    x.verify(true);
}

// --- descriptor floods ----------------------------------------------------------------------

// The attack class: handles the guest never releases. Each kind stops at the share's budget with
// EMFILE, the request over it changes nothing, and the process keeps its reserve of descriptors
// while the share goes on serving everything that needs none for long.
TEST_CASE("escape 44: OPEN, OPENDIR and CREATE floods stop at the share's handle budget",
          "[fuse][escape]") {
    // Budget: 600 - 256 reserved = 344 (handles 86, inodes 172, locks 43).
    SoftFdLimit limit(open_fd_count() + 600);
    Escape x;
    host_write(x.in_root("f"), "data");
    host_write(x.in_root("g"), "other");
    REQUIRE(::mkdir(x.in_root("d").c_str(), 0755) == 0);
    Entry f = x.lookup("f");
    Entry d = x.lookup("d");
    auto keep = x.fs->open(x.ctx, f.nodeid, O_RDWR, false);
    REQUIRE(keep.has_value());

    constexpr int kFlood = 5000;
    std::vector<std::pair<NodeId, FileHandle>> held;
    int refused = 0;
    std::string kind;
    SECTION("OPEN") {
        kind = "open";
    }
    SECTION("OPENDIR") {
        kind = "opendir";
    }
    SECTION("CREATE") {
        kind = "create";
    }
    for (int i = 0; i < kFlood && refused == 0; ++i) {
        Result<OpenResult> r = std::unexpected(0);
        NodeId node = f.nodeid;
        if (kind == "open") {
            r = x.fs->open(x.ctx, f.nodeid, O_RDONLY, false);
        } else if (kind == "opendir") {
            node = d.nodeid;
            r = x.fs->opendir(x.ctx, d.nodeid, 0);
        } else {
            const std::string name = "c" + std::to_string(i);
            auto c = x.fs->create(x.ctx, FUSE_ROOT_ID, name, 0644, 0, O_RDWR);
            if (c) {
                node = c->entry.nodeid;
                r = c->open;
            } else {
                r = std::unexpected(c.error());
                // Refused before anything was made.
                CHECK(::access(x.in_root(name).c_str(), F_OK) != 0);
            }
        }
        if (!r) {
            CHECK(err(r) == EMFILE);
            ++refused;
            break;
        }
        held.emplace_back(node, r->fh);
    }
    INFO(kind << ": " << held.size() << " handles before EMFILE");
    CHECK(refused == 1);
    CHECK(held.size() >= 64);
    CHECK(held.size() <= 100);

    // The process keeps its reserve: a VMM's eventfds, a guest-unrelated open.
    CHECK(process_can_open(200));
    // The share serves what takes no lasting descriptor: LOOKUP, GETATTR, SYNCFS, SETLK on a
    // handle already open, SETUPMAPPING's extents.
    Entry g = x.lookup("g");
    CHECK(x.fs->getattr(x.ctx, g.nodeid, std::nullopt).has_value());
    CHECK(x.fs->syncfs(x.ctx).has_value());
    CHECK(x.fs->setlk(x.ctx, f.nodeid, keep->fh, 7, Lock{0, 10, F_WRLCK, 0}, false).has_value());
    CHECK(x.fs->extents(x.ctx, g.nodeid, std::nullopt, 0, 4096, false,
                        [](std::span<const FileExtent>) -> Result<void> { return {}; })
              .has_value());
    // Refused before the host file is opened: an O_TRUNC does not truncate.
    CHECK(err(x.fs->open(x.ctx, g.nodeid, O_WRONLY | O_TRUNC, false)) == EMFILE);
    CHECK(x.fs->getattr(x.ctx, g.nodeid, std::nullopt)->st.st_size == 5);

    // One released, one more may be open.
    const auto [node, fh] = held.back();
    held.pop_back();
    if (kind == "opendir") {
        x.fs->releasedir(x.ctx, node, fh);
        auto again = x.fs->opendir(x.ctx, d.nodeid, 0);
        REQUIRE(again.has_value());
        held.emplace_back(d.nodeid, again->fh);
        CHECK(err(x.fs->opendir(x.ctx, d.nodeid, 0)) == EMFILE);
    } else {
        x.fs->release(x.ctx, node, fh, 0, false, 0);
        auto again = x.fs->open(x.ctx, g.nodeid, O_RDONLY, false);
        REQUIRE(again.has_value());
        held.emplace_back(g.nodeid, again->fh);
        CHECK(err(x.fs->open(x.ctx, g.nodeid, O_RDONLY, false)) == EMFILE);
    }
    for (const auto& [n, h] : held) {
        if (kind == "opendir") {
            x.fs->releasedir(x.ctx, n, h);
        } else {
            x.fs->release(x.ctx, n, h, 0, false, 0);
        }
    }
    x.fs->release(x.ctx, f.nodeid, keep->fh, 0, false, 7);
    x.verify();
}

// The attack class: lookups the guest never forgets, on a server without file handles (run
// unprivileged, or with them off). The inodes keep at most their part of the budget in fds; every
// one of them stays usable, and the process keeps its reserve.
TEST_CASE("escape 45: a LOOKUP flood without file handles stays within the inode budget",
          "[fuse][escape]") {
    SoftFdLimit limit(open_fd_count() + 600);  // inodes' part: (600 - 256) / 2 = 172
    PassthroughOptions options;
    options.file_handles = false;
    Escape x(options);
    REQUIRE(::mkdir(x.in_root("d").c_str(), 0755) == 0);
    constexpr int kFiles = 3000;
    for (int i = 0; i < kFiles; ++i) host_write(x.in_root("d/f" + std::to_string(i)), "x");
    const Entry d = x.lookup("d");
    const std::size_t before = open_fd_count();
    std::vector<Entry> entries;
    for (int i = 0; i < kFiles; ++i) {
        auto e = x.fs->lookup(x.ctx, d.nodeid, "f" + std::to_string(i));
        if (!e) FAIL("lookup " << i << ": " << std::strerror(e.error()));
        entries.push_back(*e);
    }
    CHECK(open_fd_count() <= before + 172);
    CHECK(process_can_open(200));
    // Every node, fd or not, is its own inode.
    for (int i = 0; i < kFiles; i += 97) {
        const Entry& e = entries[static_cast<std::size_t>(i)];
        auto attr = x.fs->getattr(x.ctx, e.nodeid, std::nullopt);
        REQUIRE(attr.has_value());
        CHECK(attr->st.st_ino == e.attr.st.st_ino);
        auto fh = x.fs->open(x.ctx, e.nodeid, O_RDONLY, false);
        REQUIRE(fh.has_value());
        CHECK(x.read_all(e.nodeid, fh->fh) == "x");
        x.fs->release(x.ctx, e.nodeid, fh->fh, 0, false, 0);
    }
    x.verify();
}

// --- handles and the rest ------------------------------------------------------------------

TEST_CASE("escape 38: O_TMPFILE then LINK to a traversing name", "[fuse][escape]") {
    Escape x;
    auto t = x.fs->tmpfile(x.ctx, FUSE_ROOT_ID, 0644, 0, O_RDWR);
    REQUIRE(t.has_value());
    CHECK(x.fs->link(x.ctx, t->entry.nodeid, FUSE_ROOT_ID, "../outside/t").error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 39: DAX extents of a file swapped for a symlink", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "inside-data");
    Entry f = x.lookup("f");
    REQUIRE(::unlink(x.in_root("f").c_str()) == 0);
    REQUIRE(::symlink(x.secret.c_str(), x.in_root("f").c_str()) == 0);
    std::string seen;
    auto r = x.fs->extents(x.ctx, f.nodeid, std::nullopt, 0, 4096, false,
                           [&](std::span<const FileExtent> ext) -> Result<void> {
                               char buf[16] = {};
                               const ssize_t n = ::pread(ext[0].fd, buf, 11, 0);
                               if (n > 0) seen.assign(buf, static_cast<std::size_t>(n));
                               return {};
                           });
    REQUIRE(r.has_value());
    CHECK(seen == "inside-data");
    Entry l = x.lookup("f");
    CHECK(x.fs->extents(x.ctx, l.nodeid, std::nullopt, 0, 4096, true,
                        [](std::span<const FileExtent>) -> Result<void> { return {}; })
              .error() == EINVAL);
    x.verify();
}

TEST_CASE("escape 40: forged and wrong-kind file handles", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    Entry f = x.lookup("f");
    auto dh = x.fs->opendir(x.ctx, FUSE_ROOT_ID, 0);
    REQUIRE(dh.has_value());
    char buf[8];
    iovec v{buf, sizeof(buf)};
    for (FileHandle fh : {FileHandle{0}, FileHandle{12345}, dh->fh, UINT64_MAX}) {
        CHECK(x.fs->read(x.ctx, f.nodeid, fh, 0, {&v, 1}).error() == EBADF);
        CHECK(x.fs->write(x.ctx, f.nodeid, fh, 0, {&v, 1}, false).error() == EBADF);
        CHECK(x.fs->copy_file_range(x.ctx, f.nodeid, fh, 0, f.nodeid, fh, 0, 8, 0).error() ==
              EBADF);
    }
    x.verify();
}

TEST_CASE("escape 41: xattr names and symlink targets with NUL", "[fuse][escape]") {
    Escape x;
    host_write(x.in_root("f"), "x");
    Entry f = x.lookup("f");
    std::byte buf[8];
    CHECK(x.fs->getxattr(x.ctx, f.nodeid, std::string("user.a\0b", 8), buf).error() == EINVAL);
    CHECK(x.fs->symlink(x.ctx, FUSE_ROOT_ID, "s", std::string("ok\0/etc/passwd", 15)).error() ==
          EINVAL);
    CHECK(x.fs->getxattr(x.ctx, f.nodeid, std::string(300, 'u'), buf).error() == ERANGE);
    x.verify();
}

TEST_CASE("escape 42: a host hard link to the sentinel is not reachable by LINK tricks",
          "[fuse][escape]") {
    Escape x;
    // The guest only knows inodes it looked up inside the root; linking one of those into a
    // name never creates a link to anything else.
    host_write(x.in_root("f"), "x");
    Entry f = x.lookup("f");
    auto hl = x.fs->link(x.ctx, f.nodeid, FUSE_ROOT_ID, "secret");
    REQUIRE(hl.has_value());
    struct stat st {};
    REQUIRE(::stat(x.in_root("secret").c_str(), &st) == 0);
    CHECK(st.st_ino != x.secret_st.st_ino);
    x.verify();
}

// --- privileges ----------------------------------------------------------------------------

TEST_CASE("escape 46: set-user-ID and set-group-ID files are not made unless allowed",
          "[fuse][escape]") {
    // A root server creates files as the guest's uid: a guest's set-user-ID root file would be
    // one any host user who reaches the share runs as root.
    auto mode_of = [](const Escape& x, const std::string& name) {
        struct stat st {};
        REQUIRE(::lstat(x.in_root(name).c_str(), &st) == 0);
        return st.st_mode & 07777;
    };
    Escape x;
    REQUIRE(x.fs->create(x.ctx, FUSE_ROOT_ID, "c", S_IFREG | 06777, 0, O_RDWR));
    CHECK(mode_of(x, "c") == 0777);
    REQUIRE(x.fs->mknod(x.ctx, FUSE_ROOT_ID, "m", S_IFREG | 06755, 0, 0));
    CHECK(mode_of(x, "m") == 0755);
    auto d = x.fs->mkdir(x.ctx, FUSE_ROOT_ID, "d", S_IFDIR | 06775, 0);
    REQUIRE(d);
    CHECK(mode_of(x, "d") == 0775);  // mkdir(2) itself takes no set-ID bits
    host_write(x.in_root("f"), "x");
    Entry f = x.lookup("f");
    SetAttrIn chmod{};
    chmod.valid = FATTR_MODE;
    chmod.mode = S_IFDIR | 06777;  // the type the guest claims does not decide: the inode's does
    REQUIRE(x.fs->setattr(x.ctx, f.nodeid, chmod));
    CHECK(mode_of(x, "f") == 0777);
    chmod.mode = S_IFDIR | 06755;
    REQUIRE(x.fs->setattr(x.ctx, d->nodeid, chmod));
    CHECK(mode_of(x, "d") == 02755);  // set-group-ID on a directory only passes its group on
    auto t = x.fs->tmpfile(x.ctx, FUSE_ROOT_ID, S_IFREG | 04755, 0, O_RDWR);
    REQUIRE(t);
    CHECK((t->entry.attr.st.st_mode & 07777) == 0755);
    x.verify();

    Escape allowed(PassthroughOptions{.root = {}, .allow_setid = true});
    REQUIRE(allowed.fs->create(allowed.ctx, FUSE_ROOT_ID, "c", S_IFREG | 04755, 0, O_RDWR));
    CHECK(mode_of(allowed, "c") == 04755);
}

TEST_CASE("escape 47: uid or gid -1 is refused, never taken as 'unchanged' (root)",
          "[fuse][escape]") {
    Escape x;
    for (auto [uid, gid] : {std::pair<uint32_t, uint32_t>{UINT32_MAX, 1000}, {1000, UINT32_MAX}}) {
        RequestContext odd{uid, gid, 1, {}};
        CHECK(x.fs->create(odd, FUSE_ROOT_ID, "c", S_IFREG | 0644, 0, O_RDWR).error() == EINVAL);
        CHECK(x.fs->mkdir(odd, FUSE_ROOT_ID, "d", S_IFDIR | 0755, 0).error() == EINVAL);
        CHECK(x.fs->access(odd, FUSE_ROOT_ID, W_OK).error() == EINVAL);
    }
    CHECK_FALSE(stdfs::exists(x.in_root("c")));
    CHECK_FALSE(stdfs::exists(x.in_root("d")));
    x.verify();
}
