// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: POSIX byte-range locks as OFD locks on the owner's own description, and flock
// on the handle's; never blocking.
#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstdint>
#include <limits>

#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

namespace {

constexpr uint64_t kOffsetMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// fuse_file_lock [start, end] to struct flock (start, len; len 0 means "to end of file").
Result<struct flock> to_flock(const Lock& lock) {
    if (lock.type != F_RDLCK && lock.type != F_WRLCK && lock.type != F_UNLCK) {
        return std::unexpected(EINVAL);
    }
    if (lock.start > kOffsetMax || lock.end < lock.start) return std::unexpected(EINVAL);
    struct flock fl {};
    fl.l_type = static_cast<short>(lock.type);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(lock.start);
    fl.l_len = lock.end >= kOffsetMax ? 0 : static_cast<off_t>(lock.end - lock.start + 1);
    fl.l_pid = 0;  // required by OFD locks
    return fl;
}

}  // namespace

Result<Lock> PassthroughFs::getlk(const RequestContext&, NodeId node, FileHandle fh, uint64_t owner,
                                  const Lock& lock) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    auto fl = to_flock(lock);
    if (!fl) return std::unexpected(fl.error());
    // An owner without a description holds no lock here; the handle's description holds no
    // POSIX lock either, so it sees every owner's.
    auto owned = locks_.find(node, owner);
    const int fd = owned ? owned->fd.get() : (*open)->fd.get();
    if (::fcntl(fd, F_OFD_GETLK, &*fl) != 0) return std::unexpected(errno);
    Lock out = lock;
    out.type = static_cast<uint32_t>(fl->l_type);
    if (fl->l_type != F_UNLCK) {
        out.start = static_cast<uint64_t>(fl->l_start);
        out.end = fl->l_len == 0 ? kOffsetMax : static_cast<uint64_t>(fl->l_start + fl->l_len - 1);
        // The holder is another owner's description or a host process: no pid to report.
        out.pid = 0;
    }
    return out;
}

Result<void> PassthroughFs::setlk(const RequestContext&, NodeId node, FileHandle fh, uint64_t owner,
                                  const Lock& lock, bool flock) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    if (flock) {
        int op;
        switch (lock.type) {
            case F_RDLCK:
                op = LOCK_SH;
                break;
            case F_WRLCK:
                op = LOCK_EX;
                break;
            case F_UNLCK:
                op = LOCK_UN;
                break;
            default:
                return std::unexpected(EINVAL);
        }
        if (::flock((*open)->fd.get(), op | LOCK_NB) != 0) {
            return std::unexpected(errno == EWOULDBLOCK ? EAGAIN : errno);
        }
        return {};
    }
    auto fl = to_flock(lock);
    if (!fl) return std::unexpected(fl.error());
    PosixLocks::DescriptionPtr owned;
    if (fl->l_type == F_UNLCK) {
        // Nothing to unlock for an owner that never locked here; no description is opened.
        owned = locks_.find(node, owner);
        if (!owned) return {};
    } else {
        auto acquired = locks_.acquire(*(*open)->inode, owner, fl->l_type);
        if (!acquired) return std::unexpected(acquired.error());
        owned = std::move(*acquired);
    }
    if (::fcntl(owned->fd.get(), F_OFD_SETLK, &*fl) != 0) {
        // A conflict is EAGAIN, whichever of the two the kernel chose.
        return std::unexpected(errno == EACCES ? EAGAIN : errno);
    }
    return {};
}

}  // namespace vfsdax::fs::passthrough
