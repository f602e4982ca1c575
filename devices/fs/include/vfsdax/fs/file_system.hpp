// SPDX-License-Identifier: Apache-2.0
// FileSystem: the backend interface the FUSE server calls, one operation per FUSE request.
#pragma once

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vfsdax/export.hpp"
#include "vfsdax/fs/mapper.hpp"

namespace vfsdax::fs {

// Errors everywhere are positive errno values; the server sends them as FUSE error replies.
template <typename T>
using Result = std::expected<T, int>;

// FUSE node ids. FUSE_ROOT_ID (1) is the shared directory: it exists from init() to destroy()
// without a lookup, and forgets never drop it.
using NodeId = uint64_t;
// Open file or directory handles: opaque values the backend chooses in open/opendir/create/
// tmpfile, valid until the matching release/releasedir.
using FileHandle = uint64_t;

// Ownership and trust rules, for every operation below:
// - Node ids and handles arrive from the guest unchecked. The backend validates each one
//   (ESTALE or ENOENT for an unknown node, EBADF for an unknown or wrong-kind handle) and never
//   dereferences a guest value as a pointer.
// - Lookup counts: every successful operation that returns an Entry (lookup, mknod, mkdir,
//   symlink, link, create, tmpfile, and each readdirplus entry the sink accepts) adds one to that
//   node's lookup count. forget(node, n) subtracts n; a node whose count reaches zero may be
//   dropped, and its id may then be reused with a new generation. The server calls forget
//   itself when it cannot deliver a reply that carried an entry, so counts match the guest's.
// - destroy() (FUSE_DESTROY, or the device being reset) drops every node but the root and
//   closes every handle; init() may then start a new session.
// - Thread-safety: every operation may run concurrently with any other, on the same or on
//   different nodes, from any thread. No operation may block indefinitely: setlk never waits
//   for a conflicting lock (the server does the waiting, so a blocked SETLKW holds no thread).
// - Names are single path components: the server guarantees they are non-empty, contain no
//   '/' and no NUL; the backend still decides what "." and ".." mean (normally EINVAL/EPERM on
//   creation; lookup of ".." in the root must not leave the shared directory).

// Who asked: from fuse_in_header. FUSE 7.38 carries no supplementary groups, so `groups` is
// empty unless a future protocol extension supplies them.
struct RequestContext {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t pid = 0;
    std::span<const uint32_t> groups;
};

// Attributes as the host reports them. `flags` takes FUSE_ATTR_* bits (SUBMOUNT); the server
// owns FUSE_ATTR_DAX and sets it by its per-inode DAX policy (FuseOptions::inode_dax).
struct Attr {
    struct stat st {};
    uint32_t flags = 0;
};

// A node the guest may now refer to by `nodeid` (counts as one lookup, see above).
// nodeid:generation must never repeat for different files within a session.
struct Entry {
    NodeId nodeid = 0;
    uint64_t generation = 0;
    Attr attr;
};

// What open/opendir/create/tmpfile hand back. `open_flags` takes FOPEN_* bits the backend
// itself needs (for example FOPEN_NONSEEKABLE); the server adds its cache policy's bits.
struct OpenResult {
    FileHandle fh = 0;
    uint32_t open_flags = 0;
};

struct CreateResult {
    Entry entry;
    OpenResult open;
};

// Negotiated session properties, given to init() after FUSE_INIT.
struct SessionInfo {
    // FUSE_WRITEBACK_CACHE: the guest may read through handles opened write-only and handles
    // O_APPEND itself, so the backend opens O_WRONLY files O_RDWR and drops O_APPEND.
    bool writeback_cache = false;
    // FUSE_HANDLE_KILLPRIV_V2: the backend clears setuid/setgid when the kill flags below say so.
    bool killpriv_v2 = false;
};

// FUSE_SETATTR. `valid` holds FATTR_* bits from <linux/fuse.h>; only the fields they name are
// meaningful. FATTR_ATIME_NOW / FATTR_MTIME_NOW mean "the current time" for that stamp;
// FATTR_KILL_SUIDGID asks to clear setuid/setgid along with the change (killpriv_v2).
struct SetAttrIn {
    uint32_t valid = 0;
    std::optional<FileHandle> fh;  // FATTR_FH
    uint32_t mode = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint64_t size = 0;
    struct timespec atime {};
    struct timespec mtime {};
};

// POSIX byte-range lock, as in struct fuse_file_lock: [start, end] inclusive, end
// OFFSET_MAX (INT64_MAX) meaning "to end of file"; type F_RDLCK, F_WRLCK or F_UNLCK.
struct Lock {
    uint64_t start = 0;
    uint64_t end = 0;
    uint32_t type = 0;
    uint32_t pid = 0;
};

// One directory entry. `next_offset` is the cookie that resumes the listing just after this
// entry: the server passes it back verbatim as `offset` in a later readdir, possibly on another
// handle's listing of the same directory after other entries were added or removed, so it must
// stay meaningful (a telldir/d_off value, not an index into a buffer).
struct DirEntry {
    uint64_t ino = 0;
    uint64_t next_offset = 0;
    uint32_t type = 0;  // DT_* from <dirent.h>
    std::string_view name;
};

// Where readdir puts entries. add() returns false when the reply has no room for this entry;
// the backend then stops, and that entry was not taken (for readdirplus: the backend drops
// the lookup count it took for `entry`, since the guest never saw it).
class VFSDAX_EXPORT DirSink {
public:
    virtual ~DirSink() = default;
    // `entry` is null for plain readdir, and in readdirplus for "." and ".." (the guest does
    // not count lookups for those) and for names the backend could not look up (the guest
    // then sees a plain dirent and looks the name up itself).
    virtual bool add(const DirEntry& dirent, const Entry* entry) = 0;
};

// Called with the host extents behind a file range; the fds stay valid until it returns.
using ExtentUser = std::function<Result<void>(std::span<const FileExtent>)>;

class VFSDAX_EXPORT FileSystem {
public:
    virtual ~FileSystem() = default;

    virtual Result<void> init(const SessionInfo& session) = 0;
    virtual void destroy() = 0;

    virtual Result<Entry> lookup(const RequestContext& ctx, NodeId parent,
                                 std::string_view name) = 0;
    virtual void forget(NodeId node, uint64_t nlookup) = 0;

    // `fh`: FUSE_GETATTR_FH, the guest names an open handle of this node.
    virtual Result<Attr> getattr(const RequestContext& ctx, NodeId node,
                                 std::optional<FileHandle> fh) = 0;
    virtual Result<Attr> setattr(const RequestContext& ctx, NodeId node, const SetAttrIn& in) = 0;

    virtual Result<std::string> readlink(const RequestContext& ctx, NodeId node) = 0;
    virtual Result<Entry> symlink(const RequestContext& ctx, NodeId parent, std::string_view name,
                                  std::string_view target) = 0;
    // `mode` includes the file type bits; `umask` is the caller's, to apply where the host
    // would not (the server does not pre-apply it).
    virtual Result<Entry> mknod(const RequestContext& ctx, NodeId parent, std::string_view name,
                                uint32_t mode, uint32_t rdev, uint32_t umask) = 0;
    virtual Result<Entry> mkdir(const RequestContext& ctx, NodeId parent, std::string_view name,
                                uint32_t mode, uint32_t umask) = 0;
    virtual Result<void> unlink(const RequestContext& ctx, NodeId parent,
                                std::string_view name) = 0;
    virtual Result<void> rmdir(const RequestContext& ctx, NodeId parent, std::string_view name) = 0;
    // `flags`: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (RENAME_WHITEOUT: EINVAL unless supported).
    virtual Result<void> rename(const RequestContext& ctx, NodeId parent, std::string_view name,
                                NodeId new_parent, std::string_view new_name, uint32_t flags) = 0;
    virtual Result<Entry> link(const RequestContext& ctx, NodeId node, NodeId new_parent,
                               std::string_view new_name) = 0;

    // `flags`: the guest's open(2) flags (never O_CREAT). `kill_suidgid`: FUSE_OPEN_KILL_SUIDGID.
    virtual Result<OpenResult> open(const RequestContext& ctx, NodeId node, uint32_t flags,
                                    bool kill_suidgid) = 0;
    // Zero-copy: preadv straight into `dst` (guest memory). Returns bytes read, short at EOF.
    virtual Result<std::size_t> read(const RequestContext& ctx, NodeId node, FileHandle fh,
                                     uint64_t offset, std::span<const iovec> dst) = 0;
    // Zero-copy: pwritev straight from `src` (guest memory, which the guest may change while we
    // write: the data is whatever was there). Returns bytes written.
    virtual Result<std::size_t> write(const RequestContext& ctx, NodeId node, FileHandle fh,
                                      uint64_t offset, std::span<const iovec> src,
                                      bool kill_suidgid) = 0;
    virtual Result<struct statvfs> statfs(const RequestContext& ctx, NodeId node) = 0;
    // Last close of a handle. `flock_unlock`: FUSE_RELEASE_FLOCK_UNLOCK, drop flock locks of
    // `lock_owner` too. The handle is gone afterwards whatever happens.
    virtual void release(const RequestContext& ctx, NodeId node, FileHandle fh, uint32_t flags,
                         bool flock_unlock, uint64_t lock_owner) = 0;
    virtual Result<void> fsync(const RequestContext& ctx, NodeId node, FileHandle fh,
                               bool datasync) = 0;
    // Every close(2) of a descriptor for this handle; drops POSIX locks of `lock_owner`.
    virtual Result<void> flush(const RequestContext& ctx, NodeId node, FileHandle fh,
                               uint64_t lock_owner) = 0;

    // `flags`: XATTR_CREATE / XATTR_REPLACE.
    virtual Result<void> setxattr(const RequestContext& ctx, NodeId node, std::string_view name,
                                  std::span<const std::byte> value, uint32_t flags) = 0;
    // As getxattr(2)/listxattr(2): an empty `buffer` asks for the size; ERANGE when too small.
    virtual Result<std::size_t> getxattr(const RequestContext& ctx, NodeId node,
                                         std::string_view name, std::span<std::byte> buffer) = 0;
    virtual Result<std::size_t> listxattr(const RequestContext& ctx, NodeId node,
                                          std::span<std::byte> buffer) = 0;
    virtual Result<void> removexattr(const RequestContext& ctx, NodeId node,
                                     std::string_view name) = 0;

    virtual Result<OpenResult> opendir(const RequestContext& ctx, NodeId node, uint32_t flags) = 0;
    // Entries from `offset` (0, or a next_offset from an earlier call) until the sink is full or
    // the directory ends. readdirplus also looks each entry up (see DirSink).
    virtual Result<void> readdir(const RequestContext& ctx, NodeId node, FileHandle fh,
                                 uint64_t offset, DirSink& sink) = 0;
    virtual Result<void> readdirplus(const RequestContext& ctx, NodeId node, FileHandle fh,
                                     uint64_t offset, DirSink& sink) = 0;
    virtual void releasedir(const RequestContext& ctx, NodeId node, FileHandle fh) = 0;
    virtual Result<void> fsyncdir(const RequestContext& ctx, NodeId node, FileHandle fh,
                                  bool datasync) = 0;

    // Locks. `owner` is the guest's lock owner; `flock` selects flock(2) semantics (whole file,
    // FUSE_LK_FLOCK) instead of POSIX ranges. getlk returns the conflicting lock, or `lock`
    // with type F_UNLCK when there is none. setlk never blocks: EAGAIN on a conflict.
    virtual Result<Lock> getlk(const RequestContext& ctx, NodeId node, FileHandle fh,
                               uint64_t owner, const Lock& lock) = 0;
    virtual Result<void> setlk(const RequestContext& ctx, NodeId node, FileHandle fh,
                               uint64_t owner, const Lock& lock, bool flock) = 0;

    // `mask`: F_OK or R_OK|W_OK|X_OK, checked against ctx's uid/gid.
    virtual Result<void> access(const RequestContext& ctx, NodeId node, uint32_t mask) = 0;
    virtual Result<CreateResult> create(const RequestContext& ctx, NodeId parent,
                                        std::string_view name, uint32_t mode, uint32_t umask,
                                        uint32_t flags) = 0;
    // O_TMPFILE in directory `parent`: an unnamed regular file, open and with an entry.
    virtual Result<CreateResult> tmpfile(const RequestContext& ctx, NodeId parent, uint32_t mode,
                                         uint32_t umask, uint32_t flags) = 0;
    // `mode`: fallocate(2) mode bits (FALLOC_FL_*).
    virtual Result<void> fallocate(const RequestContext& ctx, NodeId node, FileHandle fh,
                                   uint64_t offset, uint64_t length, uint32_t mode) = 0;
    // `whence`: SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA or SEEK_HOLE. Returns the new offset.
    virtual Result<uint64_t> lseek(const RequestContext& ctx, NodeId node, FileHandle fh,
                                   uint64_t offset, uint32_t whence) = 0;
    virtual Result<std::size_t> copy_file_range(const RequestContext& ctx, NodeId node_in,
                                                FileHandle fh_in, uint64_t offset_in,
                                                NodeId node_out, FileHandle fh_out,
                                                uint64_t offset_out, uint64_t length,
                                                uint64_t flags) = 0;
    virtual Result<void> syncfs(const RequestContext& ctx) = 0;

    // DAX: the host extents behind [offset, offset + length) of `node` (or of handle `fh` when
    // given), opened for writing if `writable`, handed to `use` while their fds are valid.
    // The range may run past end of file; how far it may is the backend's choice (the mapper
    // turns accesses past the host file's end into faults it contains).
    virtual Result<void> extents(const RequestContext& ctx, NodeId node,
                                 std::optional<FileHandle> fh, uint64_t offset, uint64_t length,
                                 bool writable, const ExtentUser& use) = 0;
};

}  // namespace vfsdax::fs
