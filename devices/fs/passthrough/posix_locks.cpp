// SPDX-License-Identifier: Apache-2.0
// PosixLocks: per-owner descriptions, opened on demand, bounded, dropped on close.
#include "passthrough/posix_locks.hpp"

#include <fcntl.h>

#include <cerrno>
#include <limits>

namespace vfsdax::fs::passthrough {

namespace {

bool can_take(int access, int type) {
    return type == F_WRLCK ? access != O_RDONLY : access != O_WRONLY;
}

}  // namespace

PosixLocks::DescriptionPtr PosixLocks::find(uint64_t node, uint64_t owner) const {
    std::lock_guard lock(mutex_);
    auto it = descriptions_.find(Key{node, owner});
    return it == descriptions_.end() ? nullptr : it->second;
}

std::expected<PosixLocks::Description, int> PosixLocks::open_description(const Inode& inode,
                                                                         int type) const {
    // Read-write, so that one description takes both lock types. A file the host opens only
    // one way (read-only mount, running executable) gets the way this lock needs, which is
    // also the only way the guest's own handles can have it open.
    if (auto fd = inodes_.reopen(inode, O_RDWR)) return Description{std::move(*fd), O_RDWR};
    const int access = type == F_WRLCK ? O_WRONLY : O_RDONLY;
    auto fd = inodes_.reopen(inode, access);
    if (!fd) return std::unexpected(fd.error());
    return Description{std::move(*fd), access};
}

std::expected<PosixLocks::DescriptionPtr, int> PosixLocks::acquire(const Inode& inode,
                                                                   uint64_t owner, int type) {
    DescriptionPtr description = find(inode.nodeid, owner);
    if (!description) {
        // Opened without the mutex (it may be slow); a racing first lock of the same owner
        // may win, and then its description is the one.
        auto opened = open_description(inode, type);
        if (!opened) return std::unexpected(opened.error());
        std::lock_guard lock(mutex_);
        const Key key{inode.nodeid, owner};
        if (auto it = descriptions_.find(key); it != descriptions_.end()) {
            description = it->second;
        } else if (!handles_.has_files(inode.nodeid)) {
            // Checked under the mutex drop_if_unused() holds, so a release cannot miss it.
            return std::unexpected(EBADF);
        } else if (descriptions_.size() >= max_descriptions_) {
            return std::unexpected(ENOLCK);
        } else {
            description = std::make_shared<const Description>(std::move(*opened));
            descriptions_.emplace(key, description);
        }
    }
    if (!can_take(description->access, type)) return std::unexpected(EBADF);
    return description;
}

void PosixLocks::drop_owner(uint64_t node, uint64_t owner) {
    std::vector<DescriptionPtr> dropped;
    {
        std::lock_guard lock(mutex_);
        auto it = descriptions_.find(Key{node, owner});
        if (it == descriptions_.end()) return;
        dropped.push_back(std::move(it->second));
        descriptions_.erase(it);
    }
    unlock_all(dropped);
}

void PosixLocks::drop_if_unused(uint64_t node) {
    std::vector<DescriptionPtr> dropped;
    {
        std::lock_guard lock(mutex_);
        if (handles_.has_files(node)) return;
        auto first = descriptions_.lower_bound(Key{node, 0});
        auto last = descriptions_.upper_bound(Key{node, std::numeric_limits<uint64_t>::max()});
        for (auto it = first; it != last; ++it) dropped.push_back(std::move(it->second));
        descriptions_.erase(first, last);
    }
    unlock_all(dropped);
}

void PosixLocks::clear() {
    std::vector<DescriptionPtr> dropped;
    {
        std::lock_guard lock(mutex_);
        for (auto& [key, description] : descriptions_) dropped.push_back(std::move(description));
        descriptions_.clear();
    }
    unlock_all(dropped);
}

void PosixLocks::unlock_all(const std::vector<DescriptionPtr>& dropped) {
    struct flock whole_file {};
    whole_file.l_type = F_UNLCK;
    whole_file.l_whence = SEEK_SET;
    for (const DescriptionPtr& description : dropped) {
        (void)::fcntl(description->fd.get(), F_OFD_SETLK, &whole_file);
    }
}

}  // namespace vfsdax::fs::passthrough
