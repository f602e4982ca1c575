// SPDX-License-Identifier: Apache-2.0
// PassthroughFs core: creation, sessions, lookups, attributes of a node.
#include "passthrough/passthrough_fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "passthrough/names.hpp"
#include "vfsdax/fs/passthrough.hpp"

namespace vfsdax::fs {

namespace {

// Below this a share could not hold a handful of inodes and open files at once.
constexpr std::size_t kMinFdBudget = 64;

std::expected<std::size_t, int> open_fd_count() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return std::unexpected(errno);
    std::size_t n = 0;
    while (const dirent* d = ::readdir(dir)) {
        if (d->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    // The directory stream's own descriptor was counted.
    return n - 1;
}

}  // namespace

std::expected<std::unique_ptr<FileSystem>, int> make_passthrough(
    const PassthroughOptions& options) {
    if (options.root.empty()) return std::unexpected(EINVAL);
    UniqueFd root(::open(options.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) return std::unexpected(errno);
    std::size_t total = options.fd_budget;
    if (total == 0) {
        rlimit lim{};
        if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::unexpected(errno);
        auto open_now = open_fd_count();
        if (!open_now) return std::unexpected(open_now.error());
        const std::size_t taken = *open_now + options.reserved_fds + kMinFdBudget;
        if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < taken) return std::unexpected(EMFILE);
        total = lim.rlim_cur == RLIM_INFINITY ? SIZE_MAX / 2
                                              : lim.rlim_cur - *open_now - options.reserved_fds;
    }
    auto part = [&](std::size_t chosen, std::size_t divisor) {
        return chosen != 0 ? chosen : total / divisor;
    };
    auto table = passthrough::InodeTable::create(std::move(root), part(options.max_inode_fds, 2),
                                                 options.file_handles);
    if (!table) return std::unexpected(table.error());
    return std::make_unique<passthrough::PassthroughFs>(
        std::move(*table), part(options.max_lock_fds, 8), part(options.max_open_handles, 4),
        passthrough::PassthroughFs::CreatePolicy{options.allow_setid, options.device_nodes});
}

}  // namespace vfsdax::fs

namespace vfsdax::fs::passthrough {

Result<void> PassthroughFs::init(const SessionInfo& session) {
    session_.store(session, std::memory_order_release);
    return {};
}

void PassthroughFs::destroy() {
    handles_.clear();
    locks_.clear();
    inodes_->forget_all();
}

Result<PassthroughFs::InodePtr> PassthroughFs::inode(NodeId node) const {
    return inodes_->get(node);
}

namespace {
timespec time_of(const statx_timestamp& t) {
    return timespec{t.tv_sec, t.tv_nsec};
}

// What fstatat would have said of the same inode.
Attr attr_of(const struct statx& sx) {
    Attr attr;
    struct stat& st = attr.st;
    st.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st.st_ino = sx.stx_ino;
    st.st_mode = sx.stx_mode;
    st.st_nlink = sx.stx_nlink;
    st.st_uid = sx.stx_uid;
    st.st_gid = sx.stx_gid;
    st.st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st.st_size = static_cast<off_t>(sx.stx_size);
    st.st_blksize = sx.stx_blksize;
    st.st_blocks = static_cast<blkcnt_t>(sx.stx_blocks);
    st.st_atim = time_of(sx.stx_atime);
    st.st_mtim = time_of(sx.stx_mtime);
    st.st_ctim = time_of(sx.stx_ctime);
    return attr;
}
}  // namespace

Result<Attr> PassthroughFs::stat_inode(const Inode& inode) const {
    auto fd = inodes_->path_fd(inode);
    if (!fd) return std::unexpected(fd.error());
    Attr attr;
    if (::fstatat(fd->get(), "", &attr.st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        return std::unexpected(errno);
    }
    return attr;
}

Result<Entry> PassthroughFs::entry_for(UniqueFd fd, InodePtr* out, const Inode* parent,
                                       std::string_view name) {
    // One statx gives the inode's key and, on every local file system, its attributes too.
    auto sx = statx_fd(fd.get());
    if (!sx) return std::unexpected(sx.error());
    auto inode = inodes_->add_lookup(std::move(fd), *sx, parent, name);
    if (!inode) return std::unexpected(inode.error());
    auto attr = (sx->stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS ? Result<Attr>(attr_of(*sx))
                                                                        : stat_inode(**inode);
    if (!attr) {
        inodes_->forget((*inode)->nodeid, 1);
        return std::unexpected(attr.error());
    }
    if (out) *out = *inode;
    return Entry{(*inode)->nodeid, 0, *attr};
}

Result<Entry> PassthroughFs::lookup(const RequestContext&, NodeId parent, std::string_view name) {
    if (auto ok = check_lookup_name(name); !ok) return std::unexpected(ok.error());
    auto dir = inode(parent);
    if (!dir) return std::unexpected(dir.error());
    if ((*dir)->type != S_IFDIR) return std::unexpected(ENOTDIR);
    // ".." walks up to the root by itself (lookup_dotdot).
    if (name != "..") {
        auto dirfd = inodes_->path_fd(**dir);
        if (!dirfd) return std::unexpected(dirfd.error());
        if (auto ok = still_beneath_root(**dir, dirfd->get()); !ok) {
            return std::unexpected(ok.error());
        }
    }
    return lookup_in(**dir, name);
}

Result<Entry> PassthroughFs::lookup_in(const Inode& parent, std::string_view name) {
    if (name == ".") {
        auto attr = stat_inode(parent);
        if (!attr) return std::unexpected(attr.error());
        inodes_->add_lookup(parent);
        return Entry{parent.nodeid, 0, *attr};
    }
    if (name == "..") return lookup_dotdot(parent);
    auto dirfd = inodes_->path_fd(parent);
    if (!dirfd) return std::unexpected(dirfd.error());
    // The name is one checked component, so it cannot climb; the resolve flags are the second
    // wall: no symlink is followed (a trailing one is opened as itself, O_PATH|O_NOFOLLOW),
    // no magic link, nothing above the parent.
    const std::string cname(name);
    open_how how{};
    how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    UniqueFd fd(
        static_cast<int>(::syscall(SYS_openat2, dirfd->get(), cname.c_str(), &how, sizeof(how))));
    if (!fd.valid()) return std::unexpected(errno);
    InodePtr child;
    auto entry = entry_for(std::move(fd), &child, &parent, name);
    // A directory that is another host mount's root becomes a submount in the guest (with
    // FUSE_SUBMOUNTS), so the guest keeps that mount's inode numbers apart from ours.
    if (entry && child->type == S_IFDIR && child->key.mnt_id != parent.key.mnt_id) {
        entry->attr.flags |= FUSE_ATTR_SUBMOUNT;
    }
    return entry;
}

// ".." of a directory below the root is its host parent, accepted only if it is still the root
// or beneath it: a directory the host moved elsewhere must not lead the guest out.
Result<Entry> PassthroughFs::lookup_dotdot(const Inode& dir) {
    if (dir.nodeid == InodeTable::kRootId) return lookup_in(dir, ".");
    auto dirfd = inodes_->path_fd(dir);
    if (!dirfd) return std::unexpected(dirfd.error());
    UniqueFd parent(::openat(dirfd->get(), "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!parent.valid()) return std::unexpected(errno);
    auto sx = statx_fd(parent.get());
    if (!sx) return std::unexpected(sx.error());
    if (auto ok = beneath_root(parent.get(), key_of(*sx)); !ok) return std::unexpected(ok.error());
    return entry_for(std::move(parent));
}

Result<void> PassthroughFs::still_beneath_root(const Inode& dir, int dirfd) const {
    if (dir.nodeid == InodeTable::kRootId) return {};
    return beneath_root(dirfd, dir.key);
}

// Climbs ".." by descriptor, never by name from above, so host renames inside the share do not
// matter, only where the directory is now. A directory right below the root costs one statx; each
// level further one statx, one openat and one close.
Result<void> PassthroughFs::beneath_root(int dirfd, const InodeKey& dir_key) const {
    const InodeKey root_key = inodes_->root()->key;
    if (dir_key == root_key) return {};
    // Bounded: a path deeper than this is refused rather than walked forever.
    constexpr int kMaxDepth = 4096;
    UniqueFd owned;
    int cursor = dirfd;
    InodeKey cursor_key = dir_key;
    for (int depth = 0;; ++depth) {
        struct statx up {};
        if (::statx(cursor, "..", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, &up) !=
            0) {
            return std::unexpected(errno);
        }
        const InodeKey up_key = key_of(up);
        if (up_key == root_key) return {};
        // The host's "/" is its own parent: the walk left the shared directory.
        if (up_key == cursor_key) return std::unexpected(ENOENT);
        if (depth == kMaxDepth) return std::unexpected(ELOOP);
        UniqueFd next(::openat(cursor, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!next.valid()) return std::unexpected(errno);
        owned = std::move(next);
        cursor = owned.get();
        cursor_key = up_key;
    }
}

void PassthroughFs::forget(NodeId node, uint64_t nlookup) {
    inodes_->forget(node, nlookup);
}

Result<Attr> PassthroughFs::getattr(const RequestContext&, NodeId node,
                                    std::optional<FileHandle> fh) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    if (fh) {
        auto open = handles_.get(*fh, node, (*in)->type == S_IFDIR);
        if (!open) return std::unexpected(open.error());
        Attr attr;
        if (::fstat((*open)->fd.get(), &attr.st) != 0) return std::unexpected(errno);
        return attr;
    }
    return stat_inode(**in);
}

Result<std::string> PassthroughFs::readlink(const RequestContext&, NodeId node) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    if ((*in)->type != S_IFLNK) return std::unexpected(EINVAL);
    auto fd = inodes_->path_fd(**in);
    if (!fd) return std::unexpected(fd.error());
    std::string target(PATH_MAX, '\0');
    const ssize_t n = ::readlinkat(fd->get(), "", target.data(), target.size());
    if (n < 0) return std::unexpected(errno);
    // A target of PATH_MAX bytes or more may have been cut: refuse rather than lie.
    if (static_cast<std::size_t>(n) >= target.size()) return std::unexpected(ENAMETOOLONG);
    target.resize(static_cast<std::size_t>(n));
    return target;
}

Result<struct statvfs> PassthroughFs::statfs(const RequestContext&, NodeId node) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    auto fd = inodes_->path_fd(**in);
    if (!fd) return std::unexpected(fd.error());
    struct statvfs st {};
    if (::fstatvfs(fd->get(), &st) != 0) return std::unexpected(errno);
    return st;
}

Result<void> PassthroughFs::access(const RequestContext& ctx, NodeId node, uint32_t mask) {
    if ((mask & ~static_cast<uint32_t>(R_OK | W_OK | X_OK)) != 0) return std::unexpected(EINVAL);
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    auto fd = inodes_->path_fd(**in);
    if (!fd) return std::unexpected(fd.error());
    // Checked as the requester: the effective ids (AT_EACCESS), on a thread of our own.
    int err = 0;
    auto ran = as_requester(ctx, 0, [&] {
        if (::syscall(SYS_faccessat2, fd->get(), "", static_cast<int>(mask),
                      AT_EMPTY_PATH | AT_EACCESS | AT_SYMLINK_NOFOLLOW) != 0) {
            err = errno;
        }
    });
    if (!ran) return std::unexpected(ran.error());
    if (err) return std::unexpected(err);
    return {};
}

Result<void> PassthroughFs::syncfs(const RequestContext&) {
    // syncfs(2) wants a real open file, not an O_PATH one.
    auto fd = inodes_->reopen(*inodes_->root(), O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(fd.error());
    if (::syncfs(fd->get()) != 0) return std::unexpected(errno);
    return {};
}

}  // namespace vfsdax::fs::passthrough
