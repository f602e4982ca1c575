// SPDX-License-Identifier: Apache-2.0
// PassthroughFs::setattr: mode, owner, size and times, through the open handle when given.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

Result<void> PassthroughFs::kill_suidgid(int fd) const {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return std::unexpected(errno);
    // Set-group-ID without group-execute is mandatory locking, not a privilege: left alone.
    mode_t drop = S_ISUID;
    if (st.st_mode & S_IXGRP) drop |= S_ISGID;
    if ((st.st_mode & drop) == 0) return {};
    if (::fchmod(fd, st.st_mode & ~drop & 07777) != 0) return std::unexpected(errno);
    return {};
}

Result<Attr> PassthroughFs::setattr(const RequestContext&, NodeId node, const SetAttrIn& in) {
    auto ino = inode(node);
    if (!ino) return std::unexpected(ino.error());
    const Inode& target = **ino;
    std::shared_ptr<OpenFile> open;
    if (in.fh && (in.valid & FATTR_FH)) {
        auto found = handles_.get(*in.fh, node, target.type == S_IFDIR);
        if (!found) return std::unexpected(found.error());
        open = std::move(*found);
    }
    auto pfd = inodes_->path_fd(target);
    if (!pfd) return std::unexpected(pfd.error());
    const int path = pfd->get();

    if (in.valid & FATTR_MODE) {
        // A symlink has no mode of its own on Linux.
        if (target.type == S_IFLNK) return std::unexpected(EOPNOTSUPP);
        // The inode's own type decides what may stay, not the type bits the guest sent.
        const mode_t mode = allowed_mode(in.mode, target.type);
        int rc;
        if (open) {
            rc = ::fchmod(open->fd.get(), mode);
        } else {
            // chmod has no AT_EMPTY_PATH before Linux 6.6: the /proc magic link of our own fd
            // leads to the inode without resolving any name.
            rc = ::chmod(proc_path(path).c_str(), mode);
        }
        if (rc != 0) return std::unexpected(errno);
    }
    if (in.valid & (FATTR_UID | FATTR_GID)) {
        const uid_t uid = (in.valid & FATTR_UID) ? in.uid : static_cast<uid_t>(-1);
        const gid_t gid = (in.valid & FATTR_GID) ? in.gid : static_cast<gid_t>(-1);
        if (::fchownat(path, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
            return std::unexpected(errno);
        }
    }
    if (in.valid & FATTR_SIZE) {
        if (in.size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
            return std::unexpected(EFBIG);
        }
        if (target.type == S_IFDIR) return std::unexpected(EISDIR);
        if (target.type != S_IFREG) return std::unexpected(EINVAL);
        int rc;
        if (open && open->access != O_RDONLY) {
            rc = ::ftruncate(open->fd.get(), static_cast<off_t>(in.size));
        } else {
            auto io = inodes_->reopen(target, O_WRONLY);
            if (!io) return std::unexpected(io.error());
            rc = ::ftruncate(io->get(), static_cast<off_t>(in.size));
        }
        if (rc != 0) return std::unexpected(errno);
    }
    if (in.valid & (FATTR_ATIME | FATTR_MTIME)) {
        timespec times[2];
        times[0] = in.atime;
        times[1] = in.mtime;
        if (!(in.valid & FATTR_ATIME)) times[0].tv_nsec = UTIME_OMIT;
        if (in.valid & FATTR_ATIME_NOW) times[0].tv_nsec = UTIME_NOW;
        if (!(in.valid & FATTR_MTIME)) times[1].tv_nsec = UTIME_OMIT;
        if (in.valid & FATTR_MTIME_NOW) times[1].tv_nsec = UTIME_NOW;
        // Explicit stamps come from the guest: a nanosecond field out of range is its error.
        for (const timespec& t : times) {
            if (t.tv_nsec != UTIME_NOW && t.tv_nsec != UTIME_OMIT &&
                (t.tv_nsec < 0 || t.tv_nsec >= 1000000000L)) {
                return std::unexpected(EINVAL);
            }
        }
        const int rc = open ? ::futimens(open->fd.get(), times)
                            : ::utimensat(path, "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
        if (rc != 0) return std::unexpected(errno);
    }
    if ((in.valid & FATTR_KILL_SUIDGID) && session().killpriv_v2 && target.type == S_IFREG &&
        !(in.valid & FATTR_MODE)) {
        auto io = inodes_->reopen(target, O_RDONLY);
        if (!io) return std::unexpected(io.error());
        if (auto ok = kill_suidgid(io->get()); !ok) return std::unexpected(ok.error());
    }
    if (open) {
        Attr attr;
        if (::fstat(open->fd.get(), &attr.st) != 0) return std::unexpected(errno);
        return attr;
    }
    return stat_inode(target);
}

}  // namespace vfsdax::fs::passthrough
