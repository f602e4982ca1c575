// SPDX-License-Identifier: Apache-2.0
// InodeTable: lookup counting, fd budget, the file-handle fallback and reopening by path.
#include "passthrough/inode_table.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace vfsdax::fs::passthrough {

namespace {

// Deeper than this, a path is not walked: the inode is reported stale instead.
constexpr int kMaxDepth = 4096;

std::optional<statx_timestamp> btime_of(const struct statx& sx) {
    if (!(sx.stx_mask & STATX_BTIME)) return std::nullopt;
    return sx.stx_btime;
}

bool same_btime(const std::optional<statx_timestamp>& a, const std::optional<statx_timestamp>& b) {
    // Where the host reports no birth time, dev, ino and mount id are all there is to compare.
    if (!a || !b) return true;
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

}  // namespace

std::expected<struct statx, int> statx_fd(int fd) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
                STATX_BASIC_STATS | STATX_MNT_ID | STATX_BTIME, &sx) != 0) {
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
    root->btime = btime_of(*sx);
    root->held.fd = std::make_shared<const UniqueFd>(std::move(root_fd));
    table->by_key_[root->key] = kRootId;
    table->by_id_[kRootId] = Slot{root, 1};
    table->with_fd_ = 1;
    table->remember_mount(*root, *root->held.fd);
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
                                                                        const struct statx& sx,
                                                                        const Inode* parent,
                                                                        std::string_view name) {
    const InodeKey key = key_of(sx);
    std::lock_guard lock(mutex_);
    if (auto it = by_key_.find(key); it != by_key_.end()) {
        Slot& slot = by_id_.at(it->second);
        const Inode& known = *slot.inode;
        // The newest name is the likeliest to still be right (a host rename, a hard link).
        if (parent) set_place(known, *parent, name);
        // A path-held inode whose fd went gets this one: the same inode, just opened.
        if (!known.held.fd && known.handle.empty()) {
            (void)cache_fd(known, std::make_shared<const UniqueFd>(std::move(fd)));
        }
        ++slot.lookups;
        return slot.inode;
    }
    auto inode = make_inode(std::move(fd), sx, parent, name);
    if (!inode) return std::unexpected(inode.error());
    by_key_[key] = (*inode)->nodeid;
    by_id_[(*inode)->nodeid] = Slot{*inode, 1};
    return *inode;
}

void InodeTable::add_lookup(const Inode& inode) {
    std::lock_guard lock(mutex_);
    if (auto it = by_id_.find(inode.nodeid); it != by_id_.end()) ++it->second.lookups;
}

void InodeTable::found_at(const InodeKey& key, const Inode& parent, std::string_view name) {
    std::lock_guard lock(mutex_);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return;
    set_place(*by_id_.at(it->second).inode, parent, name);
}

std::expected<std::shared_ptr<Inode>, int> InodeTable::make_inode(UniqueFd fd,
                                                                  const struct statx& sx,
                                                                  const Inode* parent,
                                                                  std::string_view name) {
    auto inode = std::make_shared<Inode>();
    inode->key = key_of(sx);
    inode->type = sx.stx_mode & S_IFMT;
    inode->btime = btime_of(sx);
    if (inode->type == S_IFDIR) remember_mount(*inode, fd);
    if (with_fd_ >= max_fds_ && store_as_handle(*inode, fd)) {
        inode->nodeid = next_id_++;
        return inode;
    }
    if (parent) set_place(*inode, *parent, name);
    if (auto ok = cache_fd(*inode, std::make_shared<const UniqueFd>(std::move(fd))); !ok) {
        return std::unexpected(ok.error());
    }
    inode->nodeid = next_id_++;
    return inode;
}

// open_by_handle_at wants a real (not O_PATH) fd on the handle's mount. Every mount inside the
// shared directory is entered through its root directory, so the first directory seen on a
// mount provides one; opening a directory read-only has no side effect.
void InodeTable::remember_mount(const Inode& dir, const UniqueFd& fd) {
    if (!use_handles_ || mount_fds_.contains(dir.key.mnt_id)) return;
    auto opened = reopen_fd(fd.get(), O_RDONLY | O_DIRECTORY);
    if (opened) mount_fds_.emplace(dir.key.mnt_id, std::move(*opened));
}

bool InodeTable::store_as_handle(Inode& inode, const UniqueFd& fd) {
    if (!use_handles_) return false;
    // MAX_HANDLE_SZ is 128 bytes of payload.
    std::vector<unsigned char> bytes(sizeof(file_handle) + 128);
    auto* fh = reinterpret_cast<file_handle*>(bytes.data());
    fh->handle_bytes = 128;
    int mount_id = 0;
    if (::name_to_handle_at(fd.get(), "", fh, &mount_id, AT_EMPTY_PATH) != 0) return false;
    // The handle must be decodable through the same mount the inode was found on.
    if (inode.key.mnt_id != 0 && static_cast<uint64_t>(mount_id) != inode.key.mnt_id) return false;
    auto mount = mount_fds_.find(static_cast<uint64_t>(mount_id));
    if (mount == mount_fds_.end()) return false;
    // Prove the host can decode it (needs CAP_DAC_READ_SEARCH) before giving up the fd.
    UniqueFd probe(::open_by_handle_at(mount->second.get(), fh, O_PATH | O_CLOEXEC));
    if (!probe.valid()) return false;
    bytes.resize(sizeof(file_handle) + fh->handle_bytes);
    inode.handle = std::move(bytes);
    inode.mount_fd = mount->second.get();
    return true;
}

std::expected<void, int> InodeTable::cache_fd(const Inode& inode,
                                              std::shared_ptr<const UniqueFd> fd) const {
    Inode::Held& held = inode.held;
    if (held.fd) return {};
    if (with_fd_ >= max_fds_) {
        // Only an inode with a place can be found again; the least recently used goes.
        if (lru_.empty()) return std::unexpected(ENFILE);
        drop_fd(*lru_.back());
    }
    held.fd = std::move(fd);
    ++with_fd_;
    if (held.parent) {
        lru_.push_front(&inode);
        held.lru = lru_.begin();
        held.in_lru = true;
    }
    return {};
}

void InodeTable::drop_fd(const Inode& inode) const {
    Inode::Held& held = inode.held;
    if (!held.fd) return;
    // Users of the fd hold their own reference: it closes when the last of them is done.
    held.fd.reset();
    --with_fd_;
    if (held.in_lru) {
        lru_.erase(held.lru);
        held.in_lru = false;
    }
}

void InodeTable::set_place(const Inode& inode, const Inode& parent, std::string_view name) const {
    if (&inode == root_.get()) return;
    Inode::Held& held = inode.held;
    if (held.parent.get() == &parent && held.name == name) return;
    // A host that moved directories around may offer a place inside the inode itself: a path
    // through it would never end, so the old place stays (and reports ESTALE if stale).
    int depth = 0;
    for (const Inode* up = &parent; up; up = up->held.parent.get()) {
        if (up == &inode || ++depth > kMaxDepth) return;
    }
    held.parent = parent.shared_from_this();
    held.name.assign(name);
    // An inode that had no place and holds an fd may now give it up when fds run short.
    if (held.fd && !held.in_lru) {
        lru_.push_front(&inode);
        held.lru = lru_.begin();
        held.in_lru = true;
    }
}

void InodeTable::forget(uint64_t nodeid, uint64_t count) {
    std::shared_ptr<Inode> dropped;  // freed outside the lock
    std::lock_guard lock(mutex_);
    if (nodeid == kRootId) return;
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end()) return;
    Slot& slot = it->second;
    slot.lookups -= std::min(count, slot.lookups);
    if (slot.lookups > 0) return;
    dropped = std::move(slot.inode);
    by_key_.erase(dropped->key);
    drop_fd(*dropped);
    dropped->held.live = false;
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
        drop_fd(*it->second.inode);
        it->second.inode->held.live = false;
        dropped.push_back(std::move(it->second.inode));
        it = by_id_.erase(it);
    }
    by_key_.clear();
    by_key_[root_->key] = kRootId;
}

std::expected<PathFd, int> InodeTable::path_fd(const Inode& inode) const {
    // The root's fd never changes: no lock on the commonest parent.
    if (&inode == root_.get()) return PathFd(inode.held.fd);
    if (!inode.handle.empty()) {
        auto fd = open_handle(inode, O_PATH);
        if (!fd) return std::unexpected(fd.error());
        return PathFd(std::move(*fd));
    }
    {
        std::lock_guard lock(mutex_);
        const Inode::Held& held = inode.held;
        if (held.fd) {
            if (held.in_lru) lru_.splice(lru_.begin(), lru_, held.lru);
            return PathFd(held.fd);
        }
    }
    return open_by_path(inode);
}

// The inode's ancestors up to the nearest one with an fd are opened again name by name, each
// beneath the one above without following any link, and each must be the very inode the table
// knows (dev, ino, mount id, birth time), or the inode is stale: renamed or removed on the host.
std::expected<PathFd, int> InodeTable::open_by_path(const Inode& inode) const {
    std::vector<std::shared_ptr<const Inode>> chain;  // the inode first, then its parents
    std::vector<std::string> names;
    std::shared_ptr<const UniqueFd> start;
    std::shared_ptr<const Inode> top;  // a handle-held ancestor to start from
    {
        std::lock_guard lock(mutex_);
        std::shared_ptr<const Inode> cur = inode.shared_from_this();
        for (;;) {
            if (cur->held.fd) {
                start = cur->held.fd;
                break;
            }
            if (!cur->handle.empty()) {
                top = cur;
                break;
            }
            if (!cur->held.parent || chain.size() == static_cast<std::size_t>(kMaxDepth))
                return std::unexpected(ESTALE);
            names.push_back(cur->held.name);
            chain.push_back(cur);
            cur = cur->held.parent;
        }
    }
    if (top) {
        auto fd = open_handle(*top, O_PATH);
        if (!fd) return std::unexpected(fd.error());
        start = std::make_shared<const UniqueFd>(std::move(*fd));
    }
    std::vector<std::shared_ptr<const UniqueFd>> opened(chain.size());
    std::shared_ptr<const UniqueFd> at = start;
    for (std::size_t i = chain.size(); i-- > 0;) {
        open_how how{};
        how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        UniqueFd fd(static_cast<int>(
            ::syscall(SYS_openat2, at->get(), names[i].c_str(), &how, sizeof(how))));
        if (!fd.valid())
            return std::unexpected(errno == EMFILE || errno == ENFILE ? errno : ESTALE);
        auto sx = statx_fd(fd.get());
        if (!sx) return std::unexpected(sx.error());
        if (key_of(*sx) != chain[i]->key || !same_btime(btime_of(*sx), chain[i]->btime)) {
            return std::unexpected(ESTALE);
        }
        opened[i] = std::make_shared<const UniqueFd>(std::move(fd));
        at = opened[i];
    }
    {
        // The way down is likely to be taken again soon: the inodes still in the table keep
        // their fds, as far as the budget goes.
        std::lock_guard lock(mutex_);
        for (std::size_t i = chain.size(); i-- > 0;) {
            if (chain[i]->held.live) (void)cache_fd(*chain[i], opened[i]);
        }
    }
    return PathFd(opened.front());
}

std::expected<UniqueFd, int> InodeTable::open_handle(const Inode& inode, int flags) const {
    const auto* fh = reinterpret_cast<const file_handle*>(inode.handle.data());
    UniqueFd fd(
        ::open_by_handle_at(inode.mount_fd, const_cast<file_handle*>(fh), flags | O_CLOEXEC));
    if (!fd.valid()) return std::unexpected(errno);
    return fd;
}

std::expected<UniqueFd, int> InodeTable::reopen(const Inode& inode, int flags) const {
    if (!inode.handle.empty()) return open_handle(inode, flags);
    auto fd = path_fd(inode);
    if (!fd) return std::unexpected(fd.error());
    return reopen_fd(fd->get(), flags);
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
