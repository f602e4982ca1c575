// PassthroughFs: operations that add, remove or move names (created as the requester).
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "passthrough/credentials.hpp"
#include "passthrough/names.hpp"
#include "passthrough/open_flags.hpp"
#include "passthrough/passthrough_fs.hpp"
#include "passthrough/thread_umask.hpp"

namespace vfsdax::fs::passthrough {

namespace {

// The requester's umask and identity for the creating syscall; restored when it goes away.
std::expected<ScopedCredentials, int> as_requester(const RequestContext& ctx, uint32_t umask) {
    if (auto ok = set_thread_umask(umask); !ok) return std::unexpected(ok.error());
    return ScopedCredentials::switch_to(ctx.uid, ctx.gid, ctx.groups);
}

// openat2 in `dirfd` that follows no symlink and no magic link and stays beneath `dirfd`.
int open_beneath(int dirfd, const char* name, int flags, mode_t mode) {
    open_how how{};
    how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? (mode & 07777) : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return static_cast<int>(::syscall(SYS_openat2, dirfd, name, &how, sizeof(how)));
}

}  // namespace

// A parent directory and the checked name to create or remove in it.
struct PassthroughFs::NameIn {
    InodePtr dir;
    PathFd dirfd;
    std::string name;
};

Result<PassthroughFs::NameIn> PassthroughFs::name_in(NodeId parent, std::string_view name) const {
    if (auto ok = check_new_name(name); !ok) return std::unexpected(ok.error());
    auto dir = inode(parent);
    if (!dir) return std::unexpected(dir.error());
    if ((*dir)->type != S_IFDIR) return std::unexpected(ENOTDIR);
    auto fd = inodes_->path_fd(**dir);
    if (!fd) return std::unexpected(fd.error());
    if (auto ok = still_beneath_root(**dir, fd->get()); !ok) return std::unexpected(ok.error());
    return NameIn{std::move(*dir), std::move(*fd), std::string(name)};
}

Result<Entry> PassthroughFs::entry_of(const Inode& inode, const Inode& parent,
                                      std::string_view name) {
    auto fd = inodes_->path_fd(inode);
    if (!fd) return std::unexpected(fd.error());
    UniqueFd copy(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
    if (!copy.valid()) return std::unexpected(errno);
    return entry_for(std::move(copy), nullptr, &parent, name);
}

void PassthroughFs::note_place(const NameIn& at) {
    struct statx sx {};
    if (::statx(at.dirfd.get(), at.name.c_str(), AT_SYMLINK_NOFOLLOW,
                STATX_BASIC_STATS | STATX_MNT_ID, &sx) == 0) {
        inodes_->found_at(key_of(sx), *at.dir, at.name);
    }
}

Result<Entry> PassthroughFs::symlink(const RequestContext& ctx, NodeId parent,
                                     std::string_view name, std::string_view target) {
    // The target is stored, never followed by the server, so any text will do, bar NUL.
    if (target.empty() || target.size() >= PATH_MAX) return std::unexpected(ENAMETOOLONG);
    if (target.find('\0') != std::string_view::npos) return std::unexpected(EINVAL);
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    {
        auto creds = as_requester(ctx, 0);
        if (!creds) return std::unexpected(creds.error());
        if (::symlinkat(std::string(target).c_str(), at->dirfd.get(), at->name.c_str()) != 0) {
            return std::unexpected(errno);
        }
    }
    return lookup_in(*at->dir, at->name);
}

Result<Entry> PassthroughFs::mknod(const RequestContext& ctx, NodeId parent, std::string_view name,
                                   uint32_t mode, uint32_t, uint32_t umask) {
    const mode_t type = mode & S_IFMT;
    if (type == S_IFCHR || type == S_IFBLK) return std::unexpected(EPERM);
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK) return std::unexpected(EINVAL);
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    {
        auto creds = as_requester(ctx, umask);
        if (!creds) return std::unexpected(creds.error());
        if (::mknodat(at->dirfd.get(), at->name.c_str(), type | (mode & 07777), 0) != 0) {
            return std::unexpected(errno);
        }
    }
    return lookup_in(*at->dir, at->name);
}

Result<Entry> PassthroughFs::mkdir(const RequestContext& ctx, NodeId parent, std::string_view name,
                                   uint32_t mode, uint32_t umask) {
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    {
        auto creds = as_requester(ctx, umask);
        if (!creds) return std::unexpected(creds.error());
        if (::mkdirat(at->dirfd.get(), at->name.c_str(), mode & 07777) != 0) {
            return std::unexpected(errno);
        }
    }
    return lookup_in(*at->dir, at->name);
}

Result<void> PassthroughFs::unlink(const RequestContext&, NodeId parent, std::string_view name) {
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    if (::unlinkat(at->dirfd.get(), at->name.c_str(), 0) != 0) return std::unexpected(errno);
    return {};
}

Result<void> PassthroughFs::rmdir(const RequestContext&, NodeId parent, std::string_view name) {
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    if (::unlinkat(at->dirfd.get(), at->name.c_str(), AT_REMOVEDIR) != 0) {
        return std::unexpected(errno);
    }
    return {};
}

Result<void> PassthroughFs::rename(const RequestContext&, NodeId parent, std::string_view name,
                                   NodeId new_parent, std::string_view new_name, uint32_t flags) {
    if ((flags & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
        return std::unexpected(EINVAL);
    }
    auto from = name_in(parent, name);
    if (!from) return std::unexpected(from.error());
    auto to = name_in(new_parent, new_name);
    if (!to) return std::unexpected(to.error());
    if (::renameat2(from->dirfd.get(), from->name.c_str(), to->dirfd.get(), to->name.c_str(),
                    flags) != 0) {
        return std::unexpected(errno);
    }
    // Inodes held by path are found under their new names from now on.
    note_place(*to);
    if (flags & RENAME_EXCHANGE) note_place(*from);
    return {};
}

Result<Entry> PassthroughFs::link(const RequestContext&, NodeId node, NodeId new_parent,
                                  std::string_view new_name) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    auto to = name_in(new_parent, new_name);
    if (!to) return std::unexpected(to.error());
    auto fd = inodes_->path_fd(**in);
    if (!fd) return std::unexpected(fd.error());
    // The inode itself is linked (a symlink stays a symlink); AT_EMPTY_PATH needs
    // CAP_DAC_READ_SEARCH, the /proc magic link does not.
    if (::linkat(fd->get(), "", to->dirfd.get(), to->name.c_str(), AT_EMPTY_PATH) != 0) {
        if (errno != ENOENT) return std::unexpected(errno);
        if (::linkat(AT_FDCWD, proc_path(fd->get()).c_str(), to->dirfd.get(), to->name.c_str(),
                     AT_SYMLINK_FOLLOW) != 0) {
            return std::unexpected(errno);
        }
    }
    return entry_of(**in, *to->dir, to->name);
}

Result<CreateResult> PassthroughFs::create(const RequestContext& ctx, NodeId parent,
                                           std::string_view name, uint32_t mode, uint32_t umask,
                                           uint32_t flags) {
    auto io_flags = sanitize_open_flags(flags, session_.writeback_cache);
    if (!io_flags) return std::unexpected(io_flags.error());
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    // Before the file exists: over the budget, nothing is created.
    auto room = handles_.reserve();
    if (!room) return std::unexpected(room.error());
    UniqueFd fd;
    int err = 0;
    {
        auto creds = as_requester(ctx, umask);
        if (!creds) return std::unexpected(creds.error());
        // Always exclusive: an existing name is never opened by the creating call, so a fifo
        // or device someone put there is not opened (it would block or act) and a symlink is
        // not followed (ELOOP).
        fd.reset(open_beneath(at->dirfd.get(), at->name.c_str(), *io_flags | O_CREAT | O_EXCL,
                              mode & 07777));
        err = errno;
    }
    if (!fd.valid()) {
        if (err != EEXIST || (flags & O_EXCL)) return std::unexpected(err);
        // It existed (a file the guest did not know of): open it like OPEN would, through the
        // inode found by a safe lookup. A directory is refused as open(2) refuses it. The guest
        // checked no permission on a file it thought absent, so the host checks them here.
        auto entry = lookup_in(*at->dir, at->name);
        if (!entry) return std::unexpected(entry.error());
        // open() takes its own room; this one would count the handle twice.
        room->give_back();
        Result<OpenResult> opened = std::unexpected(EISDIR);
        if (!S_ISDIR(entry->attr.st.st_mode)) {
            auto creds = as_requester(ctx, umask);
            if (creds) {
                opened = open(ctx, entry->nodeid, flags, false);
            } else {
                opened = std::unexpected(creds.error());
            }
        }
        if (!opened) {
            inodes_->forget(entry->nodeid, 1);
            return std::unexpected(opened.error());
        }
        return CreateResult{*entry, *opened};
    }
    return finish_create(std::move(*room), std::move(fd), *io_flags);
}

Result<CreateResult> PassthroughFs::tmpfile(const RequestContext& ctx, NodeId parent, uint32_t mode,
                                            uint32_t umask, uint32_t flags) {
    auto io_flags = sanitize_open_flags(flags, session_.writeback_cache);
    if (!io_flags) return std::unexpected(io_flags.error());
    auto dir = inode(parent);
    if (!dir) return std::unexpected(dir.error());
    if ((*dir)->type != S_IFDIR) return std::unexpected(ENOTDIR);
    auto dirfd = inodes_->path_fd(**dir);
    if (!dirfd) return std::unexpected(dirfd.error());
    if (auto ok = still_beneath_root(**dir, dirfd->get()); !ok) return std::unexpected(ok.error());
    auto room = handles_.reserve();
    if (!room) return std::unexpected(room.error());
    UniqueFd fd;
    int err = 0;
    {
        auto creds = as_requester(ctx, umask);
        if (!creds) return std::unexpected(creds.error());
        fd.reset(open_beneath(dirfd->get(), ".", (*io_flags & ~O_TRUNC) | O_TMPFILE, mode & 07777));
        err = errno;
    }
    if (!fd.valid()) return std::unexpected(err);
    return finish_create(std::move(*room), std::move(fd), *io_flags);
}

// A new file is open as `fd`: its inode joins the table and the fd becomes the handle.
Result<CreateResult> PassthroughFs::finish_create(HandleTable::Reservation room, UniqueFd fd,
                                                  int io_flags) {
    auto path = inodes_->reopen_fd(fd.get(), O_PATH);
    if (!path) return std::unexpected(path.error());
    InodePtr in;
    auto entry = entry_for(std::move(*path), &in);
    if (!entry) return std::unexpected(entry.error());
    return CreateResult{*entry, add_handle(std::move(room), std::move(in), std::move(fd), false,
                                           io_flags & O_ACCMODE)};
}

}  // namespace vfsdax::fs::passthrough
