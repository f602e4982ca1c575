// SPDX-License-Identifier: Apache-2.0
// InodeTable: the host inodes the guest knows, by node id and by (st_dev, st_ino, mount id).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::fs::passthrough {

struct InodeKey {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t mnt_id = 0;
    auto operator<=>(const InodeKey&) const = default;
};

// One host inode, held as an O_PATH fd, as a file handle that open_by_handle_at turns back into
// an fd on demand, or, when neither fits (fds over budget and no usable handles: an
// unprivileged server, a file system without handles), by where it was found: reopened from its
// directory by name when needed and accepted only if it is the same inode. In-flight operations
// hold a shared_ptr to the inode and to any fd they use, so neither a FORGET nor an eviction
// closes an fd under them.
struct Inode : std::enable_shared_from_this<Inode> {
    uint64_t nodeid = 0;
    InodeKey key;
    mode_t type = 0;  // S_IFMT bits; a host inode never changes type
    // The birth time where the host reports one: an inode number reused by a later file under
    // the same name has another, so a reopened path is not mistaken for the old inode.
    std::optional<statx_timestamp> btime;
    std::vector<unsigned char> handle;  // struct file_handle bytes for a handle-held inode
    int mount_fd = -1;                  // borrowed from the table's per-mount fds

    // The table's, changed under its mutex only.
    struct Held {
        std::shared_ptr<const UniqueFd> fd;  // cached O_PATH fd (the root's never goes)
        // Where the guest last found it: null for the root and for inodes found without a
        // name (O_TMPFILE, ".."), which keep their fd for as long as they live.
        std::shared_ptr<const Inode> parent;
        std::string name;
        bool in_lru = false;
        std::list<const Inode*>::iterator lru;
        bool live = true;  // in the table; a forgotten inode may live on as someone's parent
    };
    mutable Held held;
};

// A usable O_PATH fd for an inode: shared with the table's cache, or opened for this use.
class PathFd {
public:
    explicit PathFd(std::shared_ptr<const UniqueFd> fd) : fd_(std::move(fd)) {}
    explicit PathFd(UniqueFd owned) : fd_(std::make_shared<const UniqueFd>(std::move(owned))) {}
    int get() const { return fd_->get(); }
    const std::shared_ptr<const UniqueFd>& shared() const { return fd_; }

private:
    std::shared_ptr<const UniqueFd> fd_;
};

class InodeTable {
public:
    static constexpr uint64_t kRootId = 1;

    // `root_fd`: O_PATH fd of the shared directory. At most `max_fds` inodes keep an fd;
    // beyond that, inodes are held as file handles when `use_handles` and the host allows,
    // otherwise the least recently used fds are closed and reopened by path when needed.
    static std::expected<std::unique_ptr<InodeTable>, int> create(UniqueFd root_fd,
                                                                  std::size_t max_fds,
                                                                  bool use_handles);

    std::shared_ptr<const Inode> root() const { return root_; }
    // ENOENT for an id the table does not hold (never handed out, or forgotten).
    std::expected<std::shared_ptr<const Inode>, int> get(uint64_t nodeid) const;

    // Takes `fd` (an O_PATH fd just opened on a host inode) and `sx`, its statx_fd, and returns
    // the table's inode for it, adding one lookup. `parent` and `name` say where it was found
    // (none for an inode found without a name). ENFILE when it needs an fd and every fd of the
    // budget belongs to an inode that cannot be found again by name.
    std::expected<std::shared_ptr<const Inode>, int> add_lookup(UniqueFd fd, const struct statx& sx,
                                                                const Inode* parent = nullptr,
                                                                std::string_view name = {});
    // One more lookup of an inode the caller already holds ("." of a directory).
    void add_lookup(const Inode& inode);
    // The guest renamed or linked the inode with key `key` to `name` in `parent`: it is found
    // there from now on.
    void found_at(const InodeKey& key, const Inode& parent, std::string_view name);
    void forget(uint64_t nodeid, uint64_t count);
    // FUSE_DESTROY: every inode but the root is dropped.
    void forget_all();

    // ESTALE when the inode no longer exists on the host or, for one held by path, is no
    // longer found where the guest last found it.
    std::expected<PathFd, int> path_fd(const Inode& inode) const;
    // A new open file description for the inode (never O_PATH): through /proc/self/fd for an
    // fd-held inode, open_by_handle_at for a handle-held one. `flags` are open(2) flags.
    std::expected<UniqueFd, int> reopen(const Inode& inode, int flags) const;
    // A new description of what `fd` refers to, through /proc/self/fd.
    std::expected<UniqueFd, int> reopen_fd(int fd, int flags) const;

private:
    struct Slot {
        std::shared_ptr<Inode> inode;
        uint64_t lookups = 0;
    };

    InodeTable(UniqueFd proc_self_fd, std::size_t max_fds, bool use_handles)
        : proc_self_fd_(std::move(proc_self_fd)), max_fds_(max_fds), use_handles_(use_handles) {}
    std::expected<std::shared_ptr<Inode>, int> make_inode(UniqueFd fd, const struct statx& sx,
                                                          const Inode* parent,
                                                          std::string_view name);
    void remember_mount(const Inode& dir, const UniqueFd& fd);
    // Converts `inode` to a handle-held one if the budget says so and the host allows it.
    bool store_as_handle(Inode& inode, const UniqueFd& fd);
    // The rest need mutex_ held.
    // Caches `fd` as the inode's, closing the least recently used fds to stay within max_fds.
    // ENFILE when none can go.
    std::expected<void, int> cache_fd(const Inode& inode, std::shared_ptr<const UniqueFd> fd) const;
    void drop_fd(const Inode& inode) const;
    void set_place(const Inode& inode, const Inode& parent, std::string_view name) const;
    std::expected<PathFd, int> open_by_path(const Inode& inode) const;
    std::expected<UniqueFd, int> open_handle(const Inode& inode, int flags) const;

    UniqueFd proc_self_fd_;
    std::size_t max_fds_;
    bool use_handles_;
    std::shared_ptr<const Inode> root_;

    mutable std::mutex mutex_;
    uint64_t next_id_ = kRootId + 1;
    std::unordered_map<uint64_t, Slot> by_id_;
    std::map<InodeKey, uint64_t> by_key_;
    mutable std::size_t with_fd_ = 0;
    // Inodes whose cached fd may be closed (they have a place), most recently used first.
    mutable std::list<const Inode*> lru_;
    std::map<uint64_t, UniqueFd> mount_fds_;  // mount id -> a directory opened on it
};

// "/proc/self/fd/N": for the calls that take only a path (chmod, the xattr family).
std::string proc_path(int fd);

// statx of an fd itself (AT_EMPTY_PATH): the basic stats, and the mount id when the kernel
// reports one.
std::expected<struct statx, int> statx_fd(int fd);
InodeKey key_of(const struct statx& sx);

}  // namespace vfsdax::fs::passthrough
