// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: open files: open, read/write straight between guest memory and the host file,
// sync, space management and the DAX extents.
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "passthrough/open_flags.hpp"
#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

namespace {

constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

// [offset, offset + length) within what off_t can name.
bool range_ok(uint64_t offset, uint64_t length) {
    return offset <= kMaxOffset && length <= kMaxOffset - offset;
}

// preadv or pwritev over any number of iovecs: IOV_MAX bounds one call, so a longer list takes
// several, stopping at the first short one. An error after some bytes moved reports the bytes.
template <typename VectorIo>
Result<std::size_t> transfer_all(std::span<const iovec> iov, uint64_t offset, VectorIo&& io) {
    std::size_t total = 0;
    while (!iov.empty()) {
        const auto part = iov.first(std::min<std::size_t>(iov.size(), IOV_MAX));
        std::size_t want = 0;
        for (const iovec& v : part) want += v.iov_len;
        const ssize_t n =
            io(part.data(), static_cast<int>(part.size()), static_cast<off_t>(offset + total));
        if (n < 0) {
            if (total > 0) break;
            return std::unexpected(errno);
        }
        total += static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < want) break;
        iov = iov.subspan(part.size());
    }
    return total;
}

}  // namespace

Result<std::shared_ptr<OpenFile>> PassthroughFs::file(NodeId node, FileHandle fh) const {
    return handles_.get(fh, node, false);
}

OpenResult PassthroughFs::add_handle(HandleTable::Reservation room, InodePtr inode, UniqueFd fd,
                                     bool directory, int access) {
    auto open = std::make_shared<OpenFile>();
    open->inode = std::move(inode);
    open->fd = std::move(fd);
    open->directory = directory;
    open->access = access;
    return OpenResult{handles_.add(std::move(room), std::move(open)), 0};
}

Result<UniqueFd> PassthroughFs::open_for_io(const Inode& inode, uint32_t flags) const {
    auto host = sanitize_open_flags(flags, session().writeback_cache);
    if (!host) return std::unexpected(host.error());
    // Only regular files and directories carry data the server may touch; a fifo would block
    // the server and a device would act on the host.
    if (inode.type == S_IFLNK) return std::unexpected(ELOOP);
    if (inode.type != S_IFREG && inode.type != S_IFDIR) return std::unexpected(ENXIO);
    return inodes_->reopen(inode, *host);
}

Result<OpenResult> PassthroughFs::open(const RequestContext&, NodeId node, uint32_t flags,
                                       bool kill_suidgid_flag) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    auto room = handles_.reserve();
    if (!room) return std::unexpected(room.error());
    auto fd = open_for_io(**in, flags);
    if (!fd) return std::unexpected(fd.error());
    if (kill_suidgid_flag && session().killpriv_v2 && (*in)->type == S_IFREG) {
        if (auto ok = kill_suidgid(fd->get()); !ok) return std::unexpected(ok.error());
    }
    const int access = ::fcntl(fd->get(), F_GETFL) & O_ACCMODE;
    return add_handle(std::move(*room), std::move(*in), std::move(*fd), false, access);
}

Result<std::size_t> PassthroughFs::read(const RequestContext&, NodeId node, FileHandle fh,
                                        uint64_t offset, std::span<const iovec> dst) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    if (offset > kMaxOffset) return std::unexpected(EINVAL);
    const int fd = (*open)->fd.get();
    return transfer_all(dst, offset,
                        [fd](const iovec* v, int n, off_t at) { return ::preadv(fd, v, n, at); });
}

Result<std::size_t> PassthroughFs::write(const RequestContext&, NodeId node, FileHandle fh,
                                         uint64_t offset, std::span<const iovec> src,
                                         bool kill_suidgid_flag) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    if (offset > kMaxOffset) return std::unexpected(EFBIG);
    const int fd = (*open)->fd.get();
    // Root keeps set-user-ID bits on write (CAP_FSETID); the guest asked for them to go.
    if (kill_suidgid_flag && session().killpriv_v2) {
        if (auto ok = kill_suidgid(fd); !ok) return std::unexpected(ok.error());
    }
    return transfer_all(src, offset,
                        [fd](const iovec* v, int n, off_t at) { return ::pwritev(fd, v, n, at); });
}

void PassthroughFs::release(const RequestContext&, NodeId node, FileHandle fh, uint32_t,
                            bool flock_unlock, uint64_t) {
    auto open = handles_.remove(fh, node, false);
    if (!open) return;
    locks_.drop_if_unused(node);
    // The handle's flock lock lives on its description, which may outlive this call while
    // another operation still holds the file.
    if (flock_unlock) ::flock((*open)->fd.get(), LOCK_UN);
}

Result<void> PassthroughFs::fsync(const RequestContext&, NodeId node, FileHandle fh,
                                  bool datasync) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    const int fd = (*open)->fd.get();
    if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) return std::unexpected(errno);
    return {};
}

Result<void> PassthroughFs::flush(const RequestContext&, NodeId node, FileHandle fh,
                                  uint64_t lock_owner) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    // A close(2) drops the process's POSIX locks on the file, whichever descriptor held them.
    locks_.drop_owner(node, lock_owner);
    // What close(2) would do for this descriptor (some file systems report deferred write
    // errors here), without closing the handle itself.
    const int dup = ::fcntl((*open)->fd.get(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return std::unexpected(errno);
    if (::close(dup) != 0) return std::unexpected(errno);
    return {};
}

Result<void> PassthroughFs::fallocate(const RequestContext&, NodeId node, FileHandle fh,
                                      uint64_t offset, uint64_t length, uint32_t mode) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    if (!range_ok(offset, length)) return std::unexpected(EFBIG);
    if (::fallocate((*open)->fd.get(), static_cast<int>(mode), static_cast<off_t>(offset),
                    static_cast<off_t>(length)) != 0) {
        return std::unexpected(errno);
    }
    return {};
}

Result<uint64_t> PassthroughFs::lseek(const RequestContext&, NodeId node, FileHandle fh,
                                      uint64_t offset, uint32_t whence) {
    auto open = file(node, fh);
    if (!open) return std::unexpected(open.error());
    // SEEK_CUR/SEEK_END take signed offsets; the others must not be negative.
    const off_t signed_offset = static_cast<off_t>(offset);
    switch (whence) {
        case SEEK_SET:
        case SEEK_DATA:
        case SEEK_HOLE:
            if (offset > kMaxOffset) return std::unexpected(EINVAL);
            break;
        case SEEK_CUR:
        case SEEK_END:
            break;
        default:
            return std::unexpected(EINVAL);
    }
    // Reads and writes are positional, so the description's own offset is free for this.
    const off_t result = ::lseek((*open)->fd.get(), signed_offset, static_cast<int>(whence));
    if (result < 0) return std::unexpected(errno);
    return static_cast<uint64_t>(result);
}

Result<std::size_t> PassthroughFs::copy_file_range(const RequestContext&, NodeId node_in,
                                                   FileHandle fh_in, uint64_t offset_in,
                                                   NodeId node_out, FileHandle fh_out,
                                                   uint64_t offset_out, uint64_t length,
                                                   uint64_t flags) {
    if (flags != 0) return std::unexpected(EINVAL);
    auto in = file(node_in, fh_in);
    if (!in) return std::unexpected(in.error());
    auto out = file(node_out, fh_out);
    if (!out) return std::unexpected(out.error());
    if (offset_in > kMaxOffset || offset_out > kMaxOffset) return std::unexpected(EINVAL);
    off_t off_in = static_cast<off_t>(offset_in);
    off_t off_out = static_cast<off_t>(offset_out);
    const std::size_t len =
        static_cast<std::size_t>(std::min<uint64_t>(length, std::numeric_limits<ssize_t>::max()));
    const ssize_t n =
        ::copy_file_range((*in)->fd.get(), &off_in, (*out)->fd.get(), &off_out, len, 0);
    if (n < 0) return std::unexpected(errno);
    return static_cast<std::size_t>(n);
}

Result<void> PassthroughFs::extents(const RequestContext&, NodeId node,
                                    std::optional<FileHandle> fh, uint64_t offset, uint64_t length,
                                    bool writable, const ExtentUser& use) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    if ((*in)->type != S_IFREG) return std::unexpected(EINVAL);
    if (length == 0 || !range_ok(offset, length)) return std::unexpected(EINVAL);
    // A passthrough file is one extent: the file itself, at the same offset.
    if (fh) {
        auto open = file(node, *fh);
        if (!open) return std::unexpected(open.error());
        const int host_flags = ::fcntl((*open)->fd.get(), F_GETFL);
        const int access = host_flags & O_ACCMODE;
        // mmap needs read access even for a write-only mapping, and refuses a shared writable
        // mapping of an append-only description.
        const bool usable =
            writable ? access == O_RDWR && !(host_flags & O_APPEND) : access != O_WRONLY;
        if (usable) {
            const FileExtent extent{(*open)->fd.get(), offset, length};
            return use(std::span<const FileExtent>(&extent, 1));
        }
    }
    // A shared writable mapping needs a read-write description even for a write-only guest.
    auto fd = inodes_->reopen(**in, writable ? O_RDWR : O_RDONLY);
    if (!fd) return std::unexpected(fd.error());
    const FileExtent extent{fd->get(), offset, length};
    return use(std::span<const FileExtent>(&extent, 1));
}

}  // namespace vfsdax::fs::passthrough
