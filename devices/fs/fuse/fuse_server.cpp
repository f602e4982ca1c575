// SPDX-License-Identifier: Apache-2.0
// FuseServer: request framing, session setup (INIT/DESTROY) and opcode dispatch.
#include <sys/xattr.h>

#include <algorithm>
#include <climits>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

constexpr uint32_t kPageSize = 4096;
// The oldest protocol we speak: 7.31 brought the DAX mapping opcodes and FUSE_MAX_PAGES users.
constexpr uint32_t kMinMinor = 31;

uint32_t round_max_write(uint32_t requested) {
    return std::max(kPageSize, requested / kPageSize * kPageSize);
}

uint64_t timeout_for(CachePolicy cache) {
    switch (cache) {
        case CachePolicy::Never:
            return 0;
        case CachePolicy::Auto:
            return 1;
        case CachePolicy::Always:
            return 86400;
    }
    return 0;
}

// Opcodes that change the file system: EROFS on a read-only share.
bool modifies(uint32_t opcode) {
    switch (opcode) {
        case FUSE_SETATTR:
        case FUSE_SYMLINK:
        case FUSE_MKNOD:
        case FUSE_MKDIR:
        case FUSE_UNLINK:
        case FUSE_RMDIR:
        case FUSE_RENAME:
        case FUSE_RENAME2:
        case FUSE_LINK:
        case FUSE_WRITE:
        case FUSE_SETXATTR:
        case FUSE_REMOVEXATTR:
        case FUSE_CREATE:
        case FUSE_TMPFILE:
        case FUSE_FALLOCATE:
        case FUSE_COPY_FILE_RANGE:
            return true;
        default:
            return false;
    }
}

bool is_xattr(uint32_t opcode) {
    return opcode == FUSE_SETXATTR || opcode == FUSE_GETXATTR || opcode == FUSE_LISTXATTR ||
           opcode == FUSE_REMOVEXATTR;
}

}  // namespace

FuseServer::Impl::Impl(FileSystem& fs, const FuseOptions& options, Mapper* mapper)
    : fs_(fs),
      options_(options),
      mapper_(mapper),
      max_write_(round_max_write(options.max_write)),
      // The largest request: a WRITE of max_write, or a SETXATTR of the largest value with
      // the longest name; every other op's arguments are far smaller.
      max_request_(sizeof(fuse_in_header) + sizeof(fuse_write_in) +
                   std::max<uint64_t>(
                       max_write_, sizeof(fuse_setxattr_in) + XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX)),
      timeout_(timeout_for(options.cache)),
      lock_waiter_(thread_name(options.thread_tag, "lock")) {}

void FuseServer::Impl::handle(std::unique_ptr<FuseRequest> request) {
    virtio::ChainReader& reader = request->reader();
    const uint64_t chain_bytes = reader.remaining();
    fuse_in_header in{};
    int bad = 0;
    if (!reader.read(&in, sizeof(in))) {
        bad = EINVAL;
        in = {};
    } else if (in.len < sizeof(in) || in.len > chain_bytes) {
        bad = EINVAL;
    } else if (in.len > max_request_) {
        bad = E2BIG;
    } else if (in.uid == UINT32_MAX || in.gid == UINT32_MAX) {
        // -1 names nobody: to setresuid(2) and chown(2) it means "unchanged", which on a root
        // server is root. Linux never sends it (its caller gets EOVERFLOW instead).
        bad = EINVAL;
    }
    Call call{in, RequestContext{in.uid, in.gid, in.pid, {}},
              fuse::RequestBody(reader, bad ? 0 : in.len - sizeof(in)),
              fuse::ReplyWriter(request->writer(), in.unique), request};
    const Outcome outcome = bad ? call.reply.error(bad) : dispatch(call);
    if (outcome && request) request->complete(*outcome);
}

Outcome FuseServer::Impl::dispatch(Call& c) {
    const uint32_t op = c.in.opcode;
    if (op == FUSE_INIT) return init(c);
    if (!initialized_.load(std::memory_order_acquire)) {
        // FORGETs need no reply even before INIT; everything else waits for a session.
        if (op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT) return 0;
        return c.reply.error(EIO);
    }
    if (options_.read_only && modifies(op)) return c.reply.error(EROFS);
    if (!options_.xattr && is_xattr(op)) return c.reply.error(ENOSYS);
    switch (op) {
        case FUSE_DESTROY:
            return destroy(c);
        case FUSE_LOOKUP:
            return lookup(c);
        case FUSE_FORGET:
            return forget(c);
        case FUSE_BATCH_FORGET:
            return batch_forget(c);
        case FUSE_GETATTR:
            return getattr(c);
        case FUSE_SETATTR:
            return setattr(c);
        case FUSE_READLINK:
            return readlink(c);
        case FUSE_SYMLINK:
            return symlink(c);
        case FUSE_MKNOD:
            return mknod(c);
        case FUSE_MKDIR:
            return mkdir(c);
        case FUSE_UNLINK:
            return unlink(c);
        case FUSE_RMDIR:
            return rmdir(c);
        case FUSE_RENAME:
            return rename(c, false);
        case FUSE_RENAME2:
            return rename(c, true);
        case FUSE_LINK:
            return link(c);
        case FUSE_OPEN:
            return open(c);
        case FUSE_READ:
            return read(c);
        case FUSE_WRITE:
            return write(c);
        case FUSE_STATFS:
            return statfs(c);
        case FUSE_RELEASE:
            return release(c);
        case FUSE_FSYNC:
            return fsync(c, false);
        case FUSE_SETXATTR:
            return setxattr(c);
        case FUSE_GETXATTR:
            return getxattr(c, false);
        case FUSE_LISTXATTR:
            return getxattr(c, true);
        case FUSE_REMOVEXATTR:
            return removexattr(c);
        case FUSE_FLUSH:
            return flush(c);
        case FUSE_OPENDIR:
            return opendir(c);
        case FUSE_READDIR:
            return readdir(c, false);
        case FUSE_READDIRPLUS:
            return readdir(c, true);
        case FUSE_RELEASEDIR:
            return releasedir(c);
        case FUSE_FSYNCDIR:
            return fsync(c, true);
        case FUSE_GETLK:
            return getlk(c);
        case FUSE_SETLK:
            return setlk(c, false);
        case FUSE_SETLKW:
            return setlk(c, true);
        case FUSE_ACCESS:
            return access(c);
        case FUSE_CREATE:
            return create(c);
        case FUSE_INTERRUPT:
            return interrupt(c);
        case FUSE_FALLOCATE:
            return fallocate(c);
        case FUSE_LSEEK:
            return lseek(c);
        case FUSE_COPY_FILE_RANGE:
            return copy_file_range(c);
        case FUSE_SETUPMAPPING:
            return setup_mapping(c);
        case FUSE_REMOVEMAPPING:
            return remove_mapping(c);
        case FUSE_SYNCFS:
            return syncfs(c);
        case FUSE_TMPFILE:
            return tmpfile(c);
        default:
            return c.reply.error(ENOSYS);
    }
}

Outcome FuseServer::Impl::init(Call& c) {
    // Kernels before 7.36 send only the first four fields.
    fuse_init_in in{};
    constexpr std::size_t kShortInit = offsetof(fuse_init_in, flags2);
    const std::size_t n = std::min<uint64_t>(c.body.left(), sizeof(in));
    if (n < kShortInit) return c.reply.error(EINVAL);
    if (auto r = c.body.take_bytes(&in, n); !r) return c.reply.error(r.error());
    if (c.reply.room() < sizeof(fuse_init_out)) return c.reply.error(EINVAL);

    fuse_init_out out{};
    out.major = FUSE_KERNEL_VERSION;
    out.minor = FUSE_KERNEL_MINOR_VERSION;
    // A newer major: answer with ours only, and the client retries in our version.
    if (in.major > FUSE_KERNEL_VERSION) return c.reply.reply(out);
    if (in.major < FUSE_KERNEL_VERSION || in.minor < kMinMinor) return c.reply.error(EPROTO);
    std::lock_guard session_lock(session_mutex_);
    if (initialized_.load(std::memory_order_acquire)) return c.reply.error(EIO);

    // Only what this server really does; each is the client's choice to take.
    uint32_t offered = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_BIG_WRITES |
                       FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
                       FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_HANDLE_KILLPRIV_V2 |
                       FUSE_SUBMOUNTS | FUSE_MAX_PAGES;
    if (options_.writeback) offered |= FUSE_WRITEBACK_CACHE;
    // flags2 carries bits 32..63 both ways, read only when the other side set FUSE_INIT_EXT
    // (7.36); short INITs leave in.flags2 zero.
    offered |= FUSE_INIT_EXT;
    uint64_t offered2 = 0;
    if (mapper_) {
        offered |= FUSE_MAP_ALIGNMENT;
        if (options_.inode_dax != InodeDax::None) offered2 |= FUSE_HAS_INODE_DAX;
    }
    out.minor = std::min<uint32_t>(in.minor, FUSE_KERNEL_MINOR_VERSION);
    out.max_readahead = in.max_readahead;
    out.flags = in.flags & offered;
    if (out.flags & FUSE_INIT_EXT) out.flags2 = in.flags2 & static_cast<uint32_t>(offered2 >> 32);
    out.max_write = max_write_;
    out.max_pages = static_cast<uint16_t>(max_write_ / kPageSize);
    out.time_gran = 1;
    if (out.flags & FUSE_MAP_ALIGNMENT) {
        out.map_alignment = static_cast<uint16_t>(mapper_->map_alignment());
    }
    const uint64_t flags2 = uint64_t{out.flags2} << 32;

    const SessionInfo session{(out.flags & FUSE_WRITEBACK_CACHE) != 0,
                              (out.flags & FUSE_HANDLE_KILLPRIV_V2) != 0};
    if (auto r = fs_.init(session); !r) return c.reply.error(r.error());
    inode_dax_.store((flags2 & FUSE_HAS_INODE_DAX) != 0, std::memory_order_relaxed);
    initialized_.store(true, std::memory_order_release);
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::destroy(Call& c) {
    reset();
    return c.reply.finish(0);
}

void FuseServer::Impl::reset() {
    std::lock_guard session_lock(session_mutex_);
    initialized_.store(false, std::memory_order_release);
    inode_dax_.store(false, std::memory_order_relaxed);
    lock_waiter_.stop();
    // A failure leaves parts of the window as they were; the next session's SETUPMAPPINGs
    // replace whatever they land on, and nothing else could be done about it here.
    if (mapper_) (void)mapper_->reset();
    fs_.destroy();
}

fuse_attr FuseServer::Impl::wire_attr(const Attr& attr) const {
    fuse_attr out = fuse::to_fuse_attr(attr);
    out.flags &= ~uint32_t{FUSE_ATTR_DAX};
    if (!inode_dax_.load(std::memory_order_relaxed) || !S_ISREG(attr.st.st_mode)) return out;
    bool dax = false;
    switch (options_.inode_dax) {
        case InodeDax::None:
            break;
        case InodeDax::All:
            dax = true;
            break;
        case InodeDax::MinSize:
            dax = attr.st.st_size >= 0 &&
                  static_cast<uint64_t>(attr.st.st_size) >= options_.inode_dax_min_size;
            break;
    }
    if (dax) out.flags |= FUSE_ATTR_DAX;
    return out;
}

fuse_attr_out FuseServer::Impl::attr_out(const Attr& attr) const {
    fuse_attr_out out{};
    out.attr_valid = timeout_;
    out.attr = wire_attr(attr);
    return out;
}

fuse_entry_out FuseServer::Impl::entry_out(const Entry& entry) const {
    fuse_entry_out out{};
    out.nodeid = entry.nodeid;
    out.generation = entry.generation;
    out.entry_valid = timeout_;
    out.attr_valid = timeout_;
    out.attr = wire_attr(entry.attr);
    return out;
}

uint32_t FuseServer::Impl::reply_entry(Call& c, const Entry& entry) {
    if (c.reply.room() < sizeof(fuse_entry_out)) {
        fs_.forget(entry.nodeid, 1);
        return c.reply.error(EINVAL);
    }
    return c.reply.reply(entry_out(entry));
}

uint32_t FuseServer::Impl::open_flags(uint32_t backend_flags) const {
    switch (options_.cache) {
        case CachePolicy::Never:
            return backend_flags | FOPEN_DIRECT_IO;
        case CachePolicy::Auto:
            return backend_flags;
        case CachePolicy::Always:
            return backend_flags | FOPEN_KEEP_CACHE;
    }
    return backend_flags;
}

FuseServer::FuseServer(FileSystem& fs, const FuseOptions& options, Mapper* mapper)
    : impl_(std::make_unique<Impl>(fs, options, mapper)) {}
FuseServer::~FuseServer() = default;
void FuseServer::handle(std::unique_ptr<FuseRequest> request) {
    impl_->handle(std::move(request));
}
void FuseServer::reset() {
    impl_->reset();
}
uint32_t FuseServer::max_write() const {
    return impl_->max_write();
}

}  // namespace vfsdax::fs
