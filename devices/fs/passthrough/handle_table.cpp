// SPDX-License-Identifier: Apache-2.0
// HandleTable: guest-chosen handle values are looked up, never trusted.
#include "passthrough/handle_table.hpp"

#include <cerrno>

namespace vfsdax::fs::passthrough {

void HandleTable::Reservation::give_back() {
    if (!table_) return;
    std::lock_guard lock(table_->mutex_);
    --table_->reserved_;
    table_ = nullptr;
}

std::expected<HandleTable::Reservation, int> HandleTable::reserve() {
    std::lock_guard lock(mutex_);
    if (files_.size() + reserved_ >= max_handles_) return std::unexpected(EMFILE);
    ++reserved_;
    return Reservation(this);
}

uint64_t HandleTable::add(Reservation room, std::shared_ptr<OpenFile> file) {
    std::lock_guard lock(mutex_);
    // The reservation becomes the handle: counted once, in files_.
    room.table_ = nullptr;
    --reserved_;
    const uint64_t fh = next_++;
    if (!file->directory) ++files_of_node_[file->inode->nodeid];
    files_.emplace(fh, std::move(file));
    return fh;
}

std::expected<std::shared_ptr<OpenFile>, int> HandleTable::get(uint64_t fh, uint64_t nodeid,
                                                               bool directory) const {
    std::lock_guard lock(mutex_);
    auto it = files_.find(fh);
    if (it == files_.end() || it->second->inode->nodeid != nodeid ||
        it->second->directory != directory) {
        return std::unexpected(EBADF);
    }
    return it->second;
}

std::expected<std::shared_ptr<OpenFile>, int> HandleTable::remove(uint64_t fh, uint64_t nodeid,
                                                                  bool directory) {
    std::lock_guard lock(mutex_);
    auto it = files_.find(fh);
    if (it == files_.end() || it->second->inode->nodeid != nodeid ||
        it->second->directory != directory) {
        return std::unexpected(EBADF);
    }
    auto file = std::move(it->second);
    files_.erase(it);
    if (!directory) {
        auto count = files_of_node_.find(nodeid);
        if (--count->second == 0) files_of_node_.erase(count);
    }
    return file;
}

bool HandleTable::has_files(uint64_t nodeid) const {
    std::lock_guard lock(mutex_);
    return files_of_node_.contains(nodeid);
}

void HandleTable::clear() {
    decltype(files_) closing;  // fds close after the lock is released
    std::lock_guard lock(mutex_);
    closing.swap(files_);
    files_of_node_.clear();
}

}  // namespace vfsdax::fs::passthrough
