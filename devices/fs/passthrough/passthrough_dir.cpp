// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: directory handles and listings with d_off cookies as resumable offsets.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "passthrough/names.hpp"
#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

Result<OpenResult> PassthroughFs::opendir(const RequestContext&, NodeId node, uint32_t) {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    if ((*in)->type != S_IFDIR) return std::unexpected(ENOTDIR);
    auto room = handles_.reserve();
    if (!room) return std::unexpected(room.error());
    auto fd = inodes_->reopen(**in, O_RDONLY | O_DIRECTORY);
    if (fd) {
        if (auto ok = still_beneath_root(**in, fd->get()); !ok) return std::unexpected(ok.error());
    }
    if (!fd) return std::unexpected(fd.error());
    return add_handle(std::move(*room), std::move(*in), std::move(*fd), true, O_RDONLY);
}

Result<void> PassthroughFs::readdir(const RequestContext&, NodeId node, FileHandle fh,
                                    uint64_t offset, DirSink& sink) {
    return list_dir(node, fh, offset, sink, false);
}

Result<void> PassthroughFs::readdirplus(const RequestContext&, NodeId node, FileHandle fh,
                                        uint64_t offset, DirSink& sink) {
    return list_dir(node, fh, offset, sink, true);
}

// The guest's offset is the d_off of the last entry it took: the handle's DirStream resumes
// there (see dir_stream.hpp for why it does not simply seek).
Result<void> PassthroughFs::list_dir(NodeId node, FileHandle fh, uint64_t offset, DirSink& sink,
                                     bool plus) {
    auto open = handles_.get(fh, node, true);
    if (!open) return std::unexpected(open.error());
    OpenFile& dir = **open;
    std::lock_guard lock(dir.dir_mutex);
    const int fd = dir.fd.get();
    // Once per call, which also covers the lookups of a READDIRPLUS: the handle stays open on a
    // directory the host moves out, and must not list its new surroundings.
    if (auto ok = still_beneath_root(*dir.inode, fd); !ok) return std::unexpected(ok.error());
    if (auto sought = dir.listing.seek(fd, offset); !sought) return sought;
    const bool is_root = node == InodeTable::kRootId;
    const uint64_t root_ino = inodes_->root()->key.ino;
    bool added_any = false;
    for (;;) {
        auto next = dir.listing.peek(fd);
        if (!next) {
            if (added_any) return {};
            return std::unexpected(next.error());
        }
        if (*next == nullptr) return {};
        const DirStream::Entry& held = **next;
        DirEntry dirent;
        dirent.name = held.name;
        dirent.ino = held.ino;
        dirent.next_offset = held.next_offset;
        dirent.type = held.type;
        // The root's ".." is the root itself: the host's parent stays invisible.
        if (is_root && dirent.name == "..") dirent.ino = root_ino;
        if (!plus || is_dot_or_dotdot(dirent.name)) {
            if (!sink.add(dirent, nullptr)) return {};
            dir.listing.advance();
            added_any = true;
            continue;
        }
        auto entry = lookup_in(*dir.inode, dirent.name);
        if (!entry) {
            // Gone since the listing was read: the guest just does not see it.
            if (entry.error() == ENOENT) {
                dir.listing.advance();
                continue;
            }
            // Any other failure (typically EMFILE once inodes hold every fd the process may
            // have) costs the guest only the attributes, not the name: an entry without a
            // nodeid is a plain dirent to Linux, which looks the name up when it needs it.
            if (!sink.add(dirent, nullptr)) return {};
            dir.listing.advance();
            added_any = true;
            continue;
        }
        if (!sink.add(dirent, &*entry)) {
            inodes_->forget(entry->nodeid, 1);
            return {};
        }
        dir.listing.advance();
        added_any = true;
    }
}

void PassthroughFs::releasedir(const RequestContext&, NodeId node, FileHandle fh) {
    (void)handles_.remove(fh, node, true);
}

Result<void> PassthroughFs::fsyncdir(const RequestContext&, NodeId node, FileHandle fh,
                                     bool datasync) {
    auto open = handles_.get(fh, node, true);
    if (!open) return std::unexpected(open.error());
    const int fd = (*open)->fd.get();
    if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) return std::unexpected(errno);
    return {};
}

}  // namespace vfsdax::fs::passthrough
