// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: the FileSystem that serves a host directory (declared here, defined across
// the passthrough_*.cpp files by area).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "passthrough/handle_table.hpp"
#include "passthrough/inode_table.hpp"
#include "passthrough/posix_locks.hpp"
#include "passthrough/requester_threads.hpp"
#include "vfsdax/fs/file_system.hpp"

namespace vfsdax::fs::passthrough {

class PassthroughFs final : public FileSystem {
public:
    // What the guest may create (PassthroughOptions::allow_setid, device_nodes).
    struct CreatePolicy {
        bool allow_setid = false;
        bool device_nodes = true;
    };
    // `max_lock_fds`: how many lock owners' descriptions may be open (see PosixLocks);
    // `max_handles`: how many files and directories the guest may hold open.
    PassthroughFs(std::unique_ptr<InodeTable> inodes, std::size_t max_lock_fds,
                  std::size_t max_handles, CreatePolicy policy)
        : inodes_(std::move(inodes)),
          handles_(max_handles),
          locks_(*inodes_, handles_, max_lock_fds),
          policy_(policy) {}

    Result<void> init(const SessionInfo& session) override;
    void destroy() override;

    Result<Entry> lookup(const RequestContext& ctx, NodeId parent, std::string_view name) override;
    void forget(NodeId node, uint64_t nlookup) override;
    Result<Attr> getattr(const RequestContext& ctx, NodeId node,
                         std::optional<FileHandle> fh) override;
    Result<Attr> setattr(const RequestContext& ctx, NodeId node, const SetAttrIn& in) override;
    Result<std::string> readlink(const RequestContext& ctx, NodeId node) override;

    Result<Entry> symlink(const RequestContext& ctx, NodeId parent, std::string_view name,
                          std::string_view target) override;
    Result<Entry> mknod(const RequestContext& ctx, NodeId parent, std::string_view name,
                        uint32_t mode, uint32_t rdev, uint32_t umask) override;
    Result<Entry> mkdir(const RequestContext& ctx, NodeId parent, std::string_view name,
                        uint32_t mode, uint32_t umask) override;
    Result<void> unlink(const RequestContext& ctx, NodeId parent, std::string_view name) override;
    Result<void> rmdir(const RequestContext& ctx, NodeId parent, std::string_view name) override;
    Result<void> rename(const RequestContext& ctx, NodeId parent, std::string_view name,
                        NodeId new_parent, std::string_view new_name, uint32_t flags) override;
    Result<Entry> link(const RequestContext& ctx, NodeId node, NodeId new_parent,
                       std::string_view new_name) override;

    Result<OpenResult> open(const RequestContext& ctx, NodeId node, uint32_t flags,
                            bool kill_suidgid) override;
    Result<std::size_t> read(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t offset,
                             std::span<const iovec> dst) override;
    Result<std::size_t> write(const RequestContext& ctx, NodeId node, FileHandle fh,
                              uint64_t offset, std::span<const iovec> src,
                              bool kill_suidgid) override;
    Result<struct statvfs> statfs(const RequestContext& ctx, NodeId node) override;
    void release(const RequestContext& ctx, NodeId node, FileHandle fh, uint32_t flags,
                 bool flock_unlock, uint64_t lock_owner) override;
    Result<void> fsync(const RequestContext& ctx, NodeId node, FileHandle fh,
                       bool datasync) override;
    Result<void> flush(const RequestContext& ctx, NodeId node, FileHandle fh,
                       uint64_t lock_owner) override;

    Result<void> setxattr(const RequestContext& ctx, NodeId node, std::string_view name,
                          std::span<const std::byte> value, uint32_t flags) override;
    Result<std::size_t> getxattr(const RequestContext& ctx, NodeId node, std::string_view name,
                                 std::span<std::byte> buffer) override;
    Result<std::size_t> listxattr(const RequestContext& ctx, NodeId node,
                                  std::span<std::byte> buffer) override;
    Result<void> removexattr(const RequestContext& ctx, NodeId node,
                             std::string_view name) override;

    Result<OpenResult> opendir(const RequestContext& ctx, NodeId node, uint32_t flags) override;
    Result<void> readdir(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t offset,
                         DirSink& sink) override;
    Result<void> readdirplus(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t offset,
                             DirSink& sink) override;
    void releasedir(const RequestContext& ctx, NodeId node, FileHandle fh) override;
    Result<void> fsyncdir(const RequestContext& ctx, NodeId node, FileHandle fh,
                          bool datasync) override;

    Result<Lock> getlk(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t owner,
                       const Lock& lock) override;
    Result<void> setlk(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t owner,
                       const Lock& lock, bool flock) override;

    Result<void> access(const RequestContext& ctx, NodeId node, uint32_t mask) override;
    Result<CreateResult> create(const RequestContext& ctx, NodeId parent, std::string_view name,
                                uint32_t mode, uint32_t umask, uint32_t flags) override;
    Result<CreateResult> tmpfile(const RequestContext& ctx, NodeId parent, uint32_t mode,
                                 uint32_t umask, uint32_t flags) override;
    Result<void> fallocate(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t offset,
                           uint64_t length, uint32_t mode) override;
    Result<uint64_t> lseek(const RequestContext& ctx, NodeId node, FileHandle fh, uint64_t offset,
                           uint32_t whence) override;
    Result<std::size_t> copy_file_range(const RequestContext& ctx, NodeId node_in, FileHandle fh_in,
                                        uint64_t offset_in, NodeId node_out, FileHandle fh_out,
                                        uint64_t offset_out, uint64_t length,
                                        uint64_t flags) override;
    Result<void> syncfs(const RequestContext& ctx) override;
    Result<void> extents(const RequestContext& ctx, NodeId node, std::optional<FileHandle> fh,
                         uint64_t offset, uint64_t length, bool writable,
                         const ExtentUser& use) override;

private:
    using InodePtr = std::shared_ptr<const Inode>;

    Result<InodePtr> inode(NodeId node) const;
    Result<Attr> stat_inode(const Inode& inode) const;
    // Registers the inode behind O_PATH fd `fd` (one lookup), found as `name` in `parent` when
    // given, and returns its entry; `out`, if given, receives the inode.
    Result<Entry> entry_for(UniqueFd fd, InodePtr* out = nullptr, const Inode* parent = nullptr,
                            std::string_view name = {});
    // One more lookup of a known inode, found again by its key (it may have been forgotten),
    // now also named `name` in `parent`.
    Result<Entry> entry_of(const Inode& inode, const Inode& parent, std::string_view name);
    struct NameIn;
    // The directory `parent` and a checked new name in it.
    Result<NameIn> name_in(NodeId parent, std::string_view name) const;
    // The guest renamed something to `at`: the table learns where that inode is now.
    void note_place(const NameIn& at);
    Result<CreateResult> finish_create(HandleTable::Reservation room, UniqueFd fd, int io_flags);
    // Looks `name` up in `parent` without following any symlink and without leaving the root.
    Result<Entry> lookup_in(const Inode& parent, std::string_view name);
    Result<Entry> lookup_dotdot(const Inode& dir);
    // ENOENT unless the directory `dir` (open as `dirfd`) is the root or still beneath it: the
    // host may have moved it out of the share, and what is around it now is not the guest's.
    // Every operation that reaches into a directory node checks this first.
    Result<void> still_beneath_root(const Inode& dir, int dirfd) const;
    // The same for a directory known only by descriptor and key.
    Result<void> beneath_root(int dirfd, const InodeKey& dir_key) const;
    // The handle's open file, checked to be a file (not a directory) of `node`.
    Result<std::shared_ptr<OpenFile>> file(NodeId node, FileHandle fh) const;
    // A regular file or directory opened for I/O with sanitised flags.
    Result<UniqueFd> open_for_io(const Inode& inode, uint32_t flags) const;
    OpenResult add_handle(HandleTable::Reservation room, InodePtr inode, UniqueFd fd,
                          bool directory, int access);
    Result<void> kill_suidgid(int fd) const;
    using PathFdHolder = std::optional<PathFd>;
    // "/proc/self/fd/N" for the node's inode; `holder` keeps N open while the path is used.
    Result<std::string> xattr_path(NodeId node, PathFdHolder& holder) const;
    Result<void> list_dir(NodeId node, FileHandle fh, uint64_t offset, DirSink& sink, bool plus);
    // The permission bits of `mode` the guest may set on a file of `type`, per policy_.
    mode_t allowed_mode(uint32_t mode, mode_t type) const;
    // Runs `work` as the requester (uid, gid, groups, and `umask` for what it creates) on one
    // of requesters_; the caller's own thread never changes.
    Result<void> as_requester(const RequestContext& ctx, uint32_t umask,
                              const std::function<void()>& work);
    // The negotiated session: init() stores it while requests of the session before may
    // still be running (DESTROY then INIT with requests in flight), so it is read atomically.
    SessionInfo session() const { return session_.load(std::memory_order_acquire); }

    std::unique_ptr<InodeTable> inodes_;
    HandleTable handles_;
    PosixLocks locks_;
    const CreatePolicy policy_;
    // As many as FsDevice's default worker pool: creations from all of them may run at once.
    RequesterThreads requesters_{4};
    std::atomic<SessionInfo> session_{SessionInfo{}};
    static_assert(std::atomic<SessionInfo>::is_always_lock_free,
                  "a SessionInfo that outgrows a lock-free atomic needs a snapshot under a lock");
};

}  // namespace vfsdax::fs::passthrough
