// FuseServer: serves FUSE requests read from a chain onto a FileSystem, transport-agnostic.
#pragma once

#include <cstdint>
#include <memory>

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

struct FuseOptions {
    CachePolicy cache = CachePolicy::Auto;
    bool writeback = false;  // offer FUSE_WRITEBACK_CACHE
    bool xattr = false;      // serve extended attributes; off: the xattr opcodes reply ENOSYS
    bool read_only = false;  // every modifying request replies EROFS
    // Largest WRITE/READ payload; the transport lowers it to what one chain can carry.
    // Rounded down to whole pages, at least 4 KiB.
    uint32_t max_write = 1u << 20;
};

// One request in flight: where it is read from and written to, and how its reply goes back.
// The server calls complete() exactly once, possibly later and on another thread (a SETLKW
// that waits); `written` is the reply length, 0 for requests that get none (FORGET,
// BATCH_FORGET, INTERRUPT, or a request too broken to carry even a reply header).
class FuseRequest {
public:
    virtual ~FuseRequest() = default;
    virtual virtio::ChainReader& reader() = 0;
    virtual virtio::ChainWriter& writer() = 0;
    virtual void complete(uint32_t written) = 0;
};

class FuseServer {
public:
    // `fs` and `mapper` must outlive the server. Without a mapper, SETUPMAPPING and
    // REMOVEMAPPING reply ENOSYS.
    FuseServer(FileSystem& fs, const FuseOptions& options, Mapper* mapper = nullptr);
    ~FuseServer();
    FuseServer(const FuseServer&) = delete;
    FuseServer& operator=(const FuseServer&) = delete;

    // Serves one request. Thread-safe: any number of threads may call it at once. Never throws
    // for anything the guest sent: malformed requests get error replies.
    void handle(std::unique_ptr<FuseRequest> request);

    // Ends the session (device reset): drops waiting lock requests without completing them,
    // then calls FileSystem::destroy(). The caller first stops calling handle().
    void reset();

    // The max_write the server negotiates (after rounding), for transports sizing buffers.
    uint32_t max_write() const;

    class Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace vfsdax::fs
