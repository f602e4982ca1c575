// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: operations that add, remove or move names (created as the requester).
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "passthrough/names.hpp"
#include "passthrough/open_flags.hpp"
#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

namespace {

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

Result<void> PassthroughFs::as_requester(const RequestContext& ctx, uint32_t umask,
                                         const std::function<void()>& work) {
    return requesters_.run({ctx.uid, ctx.gid, ctx.groups, static_cast<mode_t>(umask)}, work);
}

mode_t PassthroughFs::allowed_mode(uint32_t mode, mode_t type) const {
    mode_t bits = mode & 07777;
    if (policy_.allow_setid) return bits;
    // Set-group-ID on a directory grants nothing: new entries inherit its group.
    return bits & ~(type == S_IFDIR ? mode_t{S_ISUID} : mode_t{S_ISUID | S_ISGID});
}

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
    int err = 0;
    auto ran = as_requester(ctx, 0, [&] {
        if (::symlinkat(std::string(target).c_str(), at->dirfd.get(), at->name.c_str()) != 0) {
            err = errno;
        }
    });
    if (!ran) return std::unexpected(ran.error());
    if (err) return std::unexpected(err);
    return lookup_in(*at->dir, at->name);
}

Result<Entry> PassthroughFs::mknod(const RequestContext& ctx, NodeId parent, std::string_view name,
                                   uint32_t mode, uint32_t rdev, uint32_t umask) {
    const mode_t type = mode & S_IFMT;
    dev_t dev = 0;
    if (type == S_IFCHR || type == S_IFBLK) {
        // The kernel's 32-bit encoding (new_encode_dev): minor's low byte, 12 bits of major,
        // then minor's upper 12 bits.
        dev = makedev((rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00));
        const bool whiteout = type == S_IFCHR && dev == 0;
        if (!whiteout && !policy_.device_nodes) return std::unexpected(EPERM);
    } else if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK) {
        return std::unexpected(EINVAL);
    }
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    int err = 0;
    auto ran = as_requester(ctx, umask, [&] {
        // Without CAP_MKNOD the host refuses a device (EPERM) but not a whiteout.
        if (::mknodat(at->dirfd.get(), at->name.c_str(), type | allowed_mode(mode, type), dev) !=
            0) {
            err = errno;
        }
    });
    if (!ran) return std::unexpected(ran.error());
    if (err) return std::unexpected(err);
    return lookup_in(*at->dir, at->name);
}

Result<Entry> PassthroughFs::mkdir(const RequestContext& ctx, NodeId parent, std::string_view name,
                                   uint32_t mode, uint32_t umask) {
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    int err = 0;
    auto ran = as_requester(ctx, umask, [&] {
        if (::mkdirat(at->dirfd.get(), at->name.c_str(), allowed_mode(mode, S_IFDIR)) != 0) {
            err = errno;
        }
    });
    if (!ran) return std::unexpected(ran.error());
    if (err) return std::unexpected(err);
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
    auto io_flags = sanitize_open_flags(flags, session().writeback_cache);
    if (!io_flags) return std::unexpected(io_flags.error());
    auto at = name_in(parent, name);
    if (!at) return std::unexpected(at.error());
    // Before the file exists: over the budget, nothing is created.
    auto room = handles_.reserve();
    if (!room) return std::unexpected(room.error());
    UniqueFd fd;
    int err = 0;
    auto ran = as_requester(ctx, umask, [&] {
        // Always exclusive: an existing name is never opened by the creating call, so a fifo
        // or device someone put there is not opened (it would block or act) and a symlink is
        // not followed (ELOOP).
        fd.reset(open_beneath(at->dirfd.get(), at->name.c_str(), *io_flags | O_CREAT | O_EXCL,
                              allowed_mode(mode, S_IFREG)));
        err = errno;
    });
    if (!ran) return std::unexpected(ran.error());
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
            auto ran_open =
                as_requester(ctx, umask, [&] { opened = open(ctx, entry->nodeid, flags, false); });
            if (!ran_open) opened = std::unexpected(ran_open.error());
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
    auto io_flags = sanitize_open_flags(flags, session().writeback_cache);
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
    auto ran = as_requester(ctx, umask, [&] {
        fd.reset(open_beneath(dirfd->get(), ".", (*io_flags & ~O_TRUNC) | O_TMPFILE,
                              allowed_mode(mode, S_IFREG)));
        err = errno;
    });
    if (!ran) return std::unexpected(ran.error());
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
