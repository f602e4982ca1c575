// SPDX-License-Identifier: Apache-2.0
// FuseServer::Impl: session state and the per-opcode handlers, split over several files.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "fuse/lock_waiter.hpp"
#include "fuse/wire.hpp"
#include "util/thread_name.hpp"
#include "vfsdax/fs/fuse_server.hpp"

namespace vfsdax::fs {

// One request being served: its header, caller, body and reply.
struct Call {
    const fuse_in_header& in;
    RequestContext ctx;
    fuse::RequestBody body;
    fuse::ReplyWriter reply;
    // Handlers that answer later (SETLKW) take ownership from here; handle() then skips
    // complete().
    std::unique_ptr<FuseRequest>& request;
};

// A handler's result: the reply length to push now, or nothing when the request was taken.
using Outcome = std::optional<uint32_t>;

class VFSDAX_LOCAL FuseServer::Impl {
public:
    Impl(FileSystem& fs, const FuseOptions& options, Mapper* mapper);

    void handle(std::unique_ptr<FuseRequest> request);
    void reset();
    uint32_t max_write() const { return max_write_; }

private:
    Outcome dispatch(Call& call);
    Outcome init(Call& call);
    Outcome destroy(Call& call);

    // node_ops.cpp
    Outcome lookup(Call& call);
    Outcome forget(Call& call);
    Outcome batch_forget(Call& call);
    Outcome getattr(Call& call);
    Outcome setattr(Call& call);
    Outcome readlink(Call& call);
    Outcome symlink(Call& call);
    Outcome mknod(Call& call);
    Outcome mkdir(Call& call);
    Outcome unlink(Call& call);
    Outcome rmdir(Call& call);
    Outcome rename(Call& call, bool with_flags);
    Outcome link(Call& call);
    Outcome statfs(Call& call);
    Outcome access(Call& call);
    Outcome syncfs(Call& call);
    // file_ops.cpp
    Outcome open(Call& call);
    Outcome create(Call& call);
    Outcome tmpfile(Call& call);
    Outcome read(Call& call);
    Outcome write(Call& call);
    Outcome release(Call& call);
    Outcome fsync(Call& call, bool dir);
    Outcome flush(Call& call);
    Outcome fallocate(Call& call);
    Outcome lseek(Call& call);
    Outcome copy_file_range(Call& call);
    // dir_ops.cpp
    Outcome opendir(Call& call);
    Outcome readdir(Call& call, bool plus);
    Outcome releasedir(Call& call);
    // xattr_ops.cpp
    Outcome setxattr(Call& call);
    Outcome getxattr(Call& call, bool list);
    Outcome removexattr(Call& call);
    // lock_ops.cpp
    Outcome getlk(Call& call);
    Outcome setlk(Call& call, bool wait);
    Outcome interrupt(Call& call);
    // mapping_ops.cpp
    Outcome setup_mapping(Call& call);
    Outcome remove_mapping(Call& call);
    // After a request that may have changed `node`'s size, before its reply: the DAX window
    // follows (Mapper::follow_file_size). 0, or the errno to answer with.
    int window_follows_size(NodeId node);

    // Replies with an entry, or forgets it again when the reply cannot carry it.
    uint32_t reply_entry(Call& call, const Entry& entry);
    // LOOKUP, MKNOD, MKDIR, LINK: one name after the fixed part and room for the entry, then
    // the entry `make(name)` returns (node_ops.cpp).
    template <typename Make>
    Outcome reply_named_entry(Call& call, Make&& make);
    uint32_t reply_create(Call& call, const CreateResult& created);
    fuse_entry_out entry_out(const Entry& entry) const;
    fuse_attr_out attr_out(const Attr& attr) const;
    // The wire attributes, FUSE_ATTR_DAX set by the per-inode DAX policy of this session.
    fuse_attr wire_attr(const Attr& attr) const;
    uint32_t open_flags(uint32_t backend_flags) const;
    // 0 when the guest may set or remove the xattr `name`, else the error to reply.
    int xattr_policy(std::string_view name) const;

    FileSystem& fs_;
    const FuseOptions options_;
    Mapper* const mapper_;
    const uint32_t max_write_;
    const uint64_t max_request_;
    const uint64_t timeout_;  // seconds, entries and attributes alike
    // INIT, DESTROY and reset() change the session one at a time: two INITs racing past the
    // initialized_ check would both start a session. Requests read the flags without it.
    std::mutex session_mutex_;
    std::atomic<bool> initialized_{false};
    // FUSE_HAS_INODE_DAX negotiated in this session's INIT.
    std::atomic<bool> inode_dax_{false};
    fuse::LockWaiter lock_waiter_;
};

}  // namespace vfsdax::fs
