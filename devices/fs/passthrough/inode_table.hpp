// InodeTable: the host inodes the guest knows, by node id and by (st_dev, st_ino, mount id).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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

// One host inode, held either as an O_PATH fd or, when fds run short, as a file handle that
// open_by_handle_at turns back into an fd on demand. Immutable once in the table: in-flight
// operations hold a shared_ptr, so a FORGET never closes an fd under them.
struct Inode {
    uint64_t nodeid = 0;
    InodeKey key;
    mode_t type = 0;  // S_IFMT bits; a host inode never changes type
    UniqueFd fd;
    std::vector<unsigned char> handle;  // struct file_handle bytes when fd is not held
    int mount_fd = -1;                  // borrowed from the table's per-mount fds
};

// A usable O_PATH fd for an inode: borrowed from the inode, or opened from its handle.
class PathFd {
public:
    explicit PathFd(int borrowed) : fd_(borrowed) {}
    explicit PathFd(UniqueFd owned) : fd_(owned.get()), owned_(std::move(owned)) {}
    int get() const { return fd_; }

private:
    int fd_;
    UniqueFd owned_;
};

class InodeTable {
public:
    static constexpr uint64_t kRootId = 1;

    // `root_fd`: O_PATH fd of the shared directory. At most `max_fds` inodes keep an fd;
    // beyond that, inodes are held as file handles when `use_handles` and the host allows.
    static std::expected<std::unique_ptr<InodeTable>, int> create(UniqueFd root_fd,
                                                                  std::size_t max_fds,
                                                                  bool use_handles);

    std::shared_ptr<const Inode> root() const { return root_; }
    // ENOENT for an id the table does not hold (never handed out, or forgotten).
    std::expected<std::shared_ptr<const Inode>, int> get(uint64_t nodeid) const;

    // Takes `fd` (an O_PATH fd just opened on a host inode) and `sx`, its statx_fd, and returns
    // the table's inode for it, adding one lookup. The fd is closed if the inode was already
    // known or is stored as a handle.
    std::expected<std::shared_ptr<const Inode>, int> add_lookup(UniqueFd fd,
                                                                const struct statx& sx);
    // One more lookup of an inode the caller already holds ("." of a directory).
    void add_lookup(const Inode& inode);
    void forget(uint64_t nodeid, uint64_t count);
    // FUSE_DESTROY: every inode but the root is dropped.
    void forget_all();

    // ESTALE when a handle-held inode no longer exists on the host.
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
    std::expected<std::shared_ptr<Inode>, int> make_inode(UniqueFd fd, const struct statx& sx);
    void remember_mount(const Inode& dir);
    // Converts `inode` to a handle-held one if the budget says so and the host allows it.
    void maybe_store_as_handle(Inode& inode);

    UniqueFd proc_self_fd_;
    std::size_t max_fds_;
    bool use_handles_;
    std::shared_ptr<const Inode> root_;

    mutable std::mutex mutex_;
    uint64_t next_id_ = kRootId + 1;
    std::unordered_map<uint64_t, Slot> by_id_;
    std::map<InodeKey, uint64_t> by_key_;
    std::size_t with_fd_ = 0;
    std::map<uint64_t, UniqueFd> mount_fds_;  // mount id -> a directory opened on it
};

// "/proc/self/fd/N": for the calls that take only a path (chmod, the xattr family).
std::string proc_path(int fd);

// statx of an fd itself (AT_EMPTY_PATH): the basic stats, and the mount id when the kernel
// reports one.
std::expected<struct statx, int> statx_fd(int fd);
InodeKey key_of(const struct statx& sx);

}  // namespace vfsdax::fs::passthrough
