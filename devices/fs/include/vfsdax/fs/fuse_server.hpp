// SPDX-License-Identifier: Apache-2.0
// FuseServer: serves FUSE requests read from a chain onto a FileSystem, transport-agnostic.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "vfsdax/export.hpp"
#include "vfsdax/fs/file_system.hpp"
#include "vfsdax/fs/mapper.hpp"
#include "vfsdax/virtio/descriptor_chain.hpp"

namespace vfsdax::fs {

// cache=never|auto|always, as virtiofsd spells it.
enum class CachePolicy {
    Never,   // no entry/attr caching, FOPEN_DIRECT_IO on every open
    Auto,    // 1 s timeouts, page cache dropped when the file changed
    Always,  // long timeouts, FOPEN_KEEP_CACHE on every open
};

// Which files get FUSE_ATTR_DAX, telling a guest that mounted in per-inode mode (Linux:
// dax=inode, and its default when no dax= option is given) to reach them through the DAX
// window. Guests mounted with dax=always use the window for every file whatever this says.
enum class InodeDax {
    None,     // no file: per-inode DAX (FUSE_HAS_INODE_DAX) is not offered at all
    All,      // every regular file
    MinSize,  // regular files of at least FuseOptions::inode_dax_min_size bytes
};

struct FuseOptions {
    CachePolicy cache = CachePolicy::Auto;
    bool writeback = false;  // offer FUSE_WRITEBACK_CACHE
    bool xattr = false;      // serve extended attributes; off: the xattr opcodes reply ENOSYS
    // With xattr: whether the guest may set and remove security.capability (file capabilities,
    // which the host honours when anyone runs the file) and trusted.* names (root-only on the
    // host; overlayfs in the guest wants them for an upper layer on the share). Off, SETXATTR
    // and REMOVEXATTR of those names reply EPERM, as the host does to an unprivileged user.
    bool xattr_capability = false;
    bool xattr_trusted = false;
    bool read_only = false;  // every modifying request replies EROFS
    // Largest WRITE/READ payload; the transport lowers it to what one chain can carry.
    // Rounded down to whole pages, at least 4 KiB.
    uint32_t max_write = 1u << 20;
    // Per-inode DAX; only with a Mapper (a DAX window), otherwise nothing is offered.
    InodeDax inode_dax = InodeDax::None;
    uint64_t inode_dax_min_size = 0;  // for InodeDax::MinSize
    // Names the server's own thread, the SETLKW waiter: fs:TAG:lock, the tag cut to fit the
    // kernel's 15 bytes (fs:lock without one). FsDevice sets its own tag when this is empty.
    std::string thread_tag = {};  // with an initializer: -Wextra passes designated initializers
};

// One request in flight: where it is read from and written to, and how its reply goes back.
// The server calls complete() exactly once, possibly later and on another thread (a SETLKW
// that waits); `written` is the reply length, 0 for requests that get none (FORGET,
// BATCH_FORGET, INTERRUPT, or a request too broken to carry even a reply header).
class VFSDAX_EXPORT FuseRequest {
public:
    virtual ~FuseRequest() = default;
    virtual virtio::ChainReader& reader() = 0;
    virtual virtio::ChainWriter& writer() = 0;
    virtual void complete(uint32_t written) = 0;
};

class VFSDAX_EXPORT FuseServer {
public:
    // `fs` and `mapper` must outlive the server. Without a mapper, SETUPMAPPING and
    // REMOVEMAPPING reply ENOSYS and FUSE_INIT offers no DAX flags; with one, INIT offers
    // FUSE_MAP_ALIGNMENT (and FUSE_HAS_INODE_DAX per `inode_dax`), SYNCFS syncs the whole
    // window, and DESTROY or reset() empties it.
    FuseServer(FileSystem& fs, const FuseOptions& options, Mapper* mapper = nullptr);
    ~FuseServer();
    FuseServer(const FuseServer&) = delete;
    FuseServer& operator=(const FuseServer&) = delete;

    // Serves one request. Thread-safe: any number of threads may call it at once. Never throws
    // for anything the guest sent: malformed requests get error replies.
    void handle(std::unique_ptr<FuseRequest> request);

    // Ends the session (device reset): drops waiting lock requests without completing them,
    // resets the mapper (every mapping goes), then calls FileSystem::destroy(). The caller
    // first stops calling handle().
    void reset();

    // The max_write the server negotiates (after rounding), for transports sizing buffers.
    uint32_t max_write() const;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace vfsdax::fs
