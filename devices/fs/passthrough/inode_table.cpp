// InodeTable: lookup counting, fd budget and the file-handle fallback.
#include "passthrough/inode_table.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <charconv>

namespace vfsdax::fs::passthrough {

std::expected<struct statx, int> statx_fd(int fd) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID,
                &sx) != 0) {
        return std::unexpected(errno);
    }
    return sx;
}

std::string proc_path(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

InodeKey key_of(const struct statx& sx) {
    return InodeKey{makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino,
                    (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id : 0};
}

std::expected<std::unique_ptr<InodeTable>, int> InodeTable::create(UniqueFd root_fd,
                                                                   std::size_t max_fds,
                                                                   bool use_handles) {
    // Held open so that reopening an inode never walks "/proc/self" again.
    UniqueFd proc(::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!proc.valid()) return std::unexpected(errno);
    auto sx = statx_fd(root_fd.get());
    if (!sx) return std::unexpected(sx.error());
    if (!S_ISDIR(sx->stx_mode)) return std::unexpected(ENOTDIR);

    std::unique_ptr<InodeTable> table(new InodeTable(std::move(proc), max_fds, use_handles));
    auto root = std::make_shared<Inode>();
    root->nodeid = kRootId;
    root->key = key_of(*sx);
    root->type = S_IFDIR;
    root->fd = std::move(root_fd);
    table->by_key_[root->key] = kRootId;
    table->by_id_[kRootId] = Slot{root, 1};
    table->with_fd_ = 1;
    table->remember_mount(*root);
    table->root_ = root;
    return table;
}

std::expected<std::shared_ptr<const Inode>, int> InodeTable::get(uint64_t nodeid) const {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end()) return std::unexpected(ENOENT);
    return it->second.inode;
}

std::expected<std::shared_ptr<const Inode>, int> InodeTable::add_lookup(UniqueFd fd,
                                                                        const struct statx& sx) {
    const InodeKey key = key_of(sx);
    std::lock_guard lock(mutex_);
    if (auto it = by_key_.find(key); it != by_key_.end()) {
        Slot& slot = by_id_.at(it->second);
        ++slot.lookups;
        return slot.inode;
    }
    auto inode = make_inode(std::move(fd), sx);
    if (!inode) return std::unexpected(inode.error());
    by_key_[key] = (*inode)->nodeid;
    by_id_[(*inode)->nodeid] = Slot{*inode, 1};
    return *inode;
}

void InodeTable::add_lookup(const Inode& inode) {
    std::lock_guard lock(mutex_);
    if (auto it = by_id_.find(inode.nodeid); it != by_id_.end()) ++it->second.lookups;
}

std::expected<std::shared_ptr<Inode>, int> InodeTable::make_inode(UniqueFd fd,
                                                                  const struct statx& sx) {
    auto inode = std::make_shared<Inode>();
    inode->nodeid = next_id_++;
    inode->key = key_of(sx);
    inode->type = sx.stx_mode & S_IFMT;
    inode->fd = std::move(fd);
    if (inode->type == S_IFDIR) remember_mount(*inode);
    maybe_store_as_handle(*inode);
    if (inode->fd.valid()) ++with_fd_;
    return inode;
}

// open_by_handle_at wants a real (not O_PATH) fd on the handle's mount. Every mount inside the
// shared directory is entered through its root directory, so the first directory seen on a
// mount provides one; opening a directory read-only has no side effect.
void InodeTable::remember_mount(const Inode& dir) {
    if (!use_handles_ || mount_fds_.contains(dir.key.mnt_id)) return;
    auto fd = reopen_fd(dir.fd.get(), O_RDONLY | O_DIRECTORY);
    if (fd) mount_fds_.emplace(dir.key.mnt_id, std::move(*fd));
}

void InodeTable::maybe_store_as_handle(Inode& inode) {
    if (!use_handles_ || with_fd_ < max_fds_) return;
    // MAX_HANDLE_SZ is 128 bytes of payload.
    std::vector<unsigned char> bytes(sizeof(file_handle) + 128);
    auto* fh = reinterpret_cast<file_handle*>(bytes.data());
    fh->handle_bytes = 128;
    int mount_id = 0;
    if (::name_to_handle_at(inode.fd.get(), "", fh, &mount_id, AT_EMPTY_PATH) != 0) return;
    // The handle must be decodable through the same mount the inode was found on.
    if (inode.key.mnt_id != 0 && static_cast<uint64_t>(mount_id) != inode.key.mnt_id) return;
    auto mount = mount_fds_.find(static_cast<uint64_t>(mount_id));
    if (mount == mount_fds_.end()) return;
    // Prove the host can decode it (needs CAP_DAC_READ_SEARCH) before giving up the fd.
    UniqueFd probe(::open_by_handle_at(mount->second.get(), fh, O_PATH | O_CLOEXEC));
    if (!probe.valid()) return;
    bytes.resize(sizeof(file_handle) + fh->handle_bytes);
    inode.handle = std::move(bytes);
    inode.mount_fd = mount->second.get();
    inode.fd.reset();
}

void InodeTable::forget(uint64_t nodeid, uint64_t count) {
    std::shared_ptr<Inode> dropped;  // closed outside the lock
    std::lock_guard lock(mutex_);
    if (nodeid == kRootId) return;
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end()) return;
    Slot& slot = it->second;
    slot.lookups -= std::min(count, slot.lookups);
    if (slot.lookups > 0) return;
    dropped = std::move(slot.inode);
    by_key_.erase(dropped->key);
    if (dropped->fd.valid()) --with_fd_;
    by_id_.erase(it);
}

void InodeTable::forget_all() {
    std::vector<std::shared_ptr<Inode>> dropped;
    std::lock_guard lock(mutex_);
    for (auto it = by_id_.begin(); it != by_id_.end();) {
        if (it->first == kRootId) {
            ++it;
            continue;
        }
        dropped.push_back(std::move(it->second.inode));
        it = by_id_.erase(it);
    }
    by_key_.clear();
    by_key_[root_->key] = kRootId;
    with_fd_ = 1;
}

std::expected<PathFd, int> InodeTable::path_fd(const Inode& inode) const {
    if (inode.fd.valid()) return PathFd(inode.fd.get());
    auto fd = reopen(inode, O_PATH);
    if (!fd) return std::unexpected(fd.error());
    return PathFd(std::move(*fd));
}

std::expected<UniqueFd, int> InodeTable::reopen(const Inode& inode, int flags) const {
    flags |= O_CLOEXEC;
    if (!inode.fd.valid()) {
        const auto* fh = reinterpret_cast<const file_handle*>(inode.handle.data());
        UniqueFd fd(::open_by_handle_at(inode.mount_fd, const_cast<file_handle*>(fh), flags));
        if (!fd.valid()) return std::unexpected(errno);
        return fd;
    }
    return reopen_fd(inode.fd.get(), flags);
}

std::expected<UniqueFd, int> InodeTable::reopen_fd(int fd, int flags) const {
    char name[16];
    auto end = std::to_chars(name, name + sizeof(name) - 1, fd).ptr;
    *end = '\0';
    // The magic link leads to the very inode the fd holds; no name is resolved again.
    UniqueFd reopened(::openat(proc_self_fd_.get(), name, flags | O_CLOEXEC));
    if (!reopened.valid()) return std::unexpected(errno);
    return reopened;
}

}  // namespace vfsdax::fs::passthrough
