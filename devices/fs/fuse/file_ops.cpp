// SPDX-License-Identifier: Apache-2.0
// Open-file opcodes: OPEN, CREATE, TMPFILE, READ, WRITE (zero-copy), RELEASE, FSYNC, FLUSH, ...
#include <fcntl.h>

#include <algorithm>
#include <climits>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

bool opens_for_writing(uint32_t flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

}  // namespace

uint32_t FuseServer::Impl::reply_create(Call& c, const CreateResult& created) {
    struct {
        fuse_entry_out entry;
        fuse_open_out open;
    } out{};
    static_assert(sizeof(out) == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    out.entry = entry_out(created.entry);
    out.open.fh = created.open.fh;
    out.open.open_flags = open_flags(created.open.open_flags);
    if (c.reply.room() < sizeof(out)) {
        fs_.release(c.ctx, created.entry.nodeid, created.open.fh, 0, false, 0);
        fs_.forget(created.entry.nodeid, 1);
        return c.reply.error(EINVAL);
    }
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::open(Call& c) {
    auto in = c.body.take<fuse_open_in>();
    if (!in) return c.reply.error(in.error());
    if (options_.read_only && opens_for_writing(in->flags)) return c.reply.error(EROFS);
    if (c.reply.room() < sizeof(fuse_open_out)) return c.reply.error(EINVAL);
    // Linux asks for the kill with an O_TRUNC open (fuse_open_common); an open that writes
    // nothing must not change the file's mode, least of all on a read-only share.
    const bool kill_suidgid =
        (in->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0 && opens_for_writing(in->flags);
    auto opened = fs_.open(c.ctx, c.in.nodeid, in->flags, kill_suidgid);
    if (!opened) return c.reply.error(opened.error());
    fuse_open_out out{};
    out.fh = opened->fh;
    out.open_flags = open_flags(opened->open_flags);
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::create(Call& c) {
    auto in = c.body.take<fuse_create_in>();
    if (!in) return c.reply.error(in.error());
    thread_local std::vector<char> buffer;
    if (auto r = c.body.take_rest(buffer, PATH_MAX); !r) return c.reply.error(r.error());
    fuse::StringList names(buffer);
    auto name = names.next_name();
    if (!name) return c.reply.error(name.error());
    if (c.reply.room() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) {
        return c.reply.error(EINVAL);
    }
    auto created = fs_.create(c.ctx, c.in.nodeid, *name, in->mode, in->umask, in->flags);
    if (!created) return c.reply.error(created.error());
    return reply_create(c, *created);
}

Outcome FuseServer::Impl::tmpfile(Call& c) {
    // The kernel appends the placeholder dentry name; an unnamed file has no use for it.
    auto in = c.body.take<fuse_create_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) {
        return c.reply.error(EINVAL);
    }
    auto created = fs_.tmpfile(c.ctx, c.in.nodeid, in->mode, in->umask, in->flags);
    if (!created) return c.reply.error(created.error());
    return reply_create(c, *created);
}

Outcome FuseServer::Impl::read(Call& c) {
    auto in = c.body.take<fuse_read_in>();
    if (!in) return c.reply.error(in.error());
    if (!c.reply.has_header()) return 0;
    const uint64_t size = std::min<uint64_t>({in->size, max_write_, c.reply.room()});
    thread_local std::vector<iovec> iov;
    iov.clear();
    c.reply.payload().peek_iovecs(size, iov);
    auto n = fs_.read(c.ctx, c.in.nodeid, in->fh, in->offset, iov);
    if (!n) return c.reply.error(n.error());
    // A backend cannot have read more than it was given room for; trust nothing anyway.
    c.reply.payload().advance(std::min<uint64_t>(*n, size));
    return c.reply.finish(0);
}

Outcome FuseServer::Impl::write(Call& c) {
    auto in = c.body.take<fuse_write_in>();
    if (!in) return c.reply.error(in.error());
    if (in->size > max_write_ || in->size != c.body.left()) return c.reply.error(EINVAL);
    if (c.reply.room() < sizeof(fuse_write_out)) return c.reply.error(EINVAL);
    thread_local std::vector<iovec> iov;
    iov.clear();
    c.body.reader().peek_iovecs(in->size, iov);
    auto n = fs_.write(c.ctx, c.in.nodeid, in->fh, in->offset, iov,
                       (in->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0);
    c.body.consumed(in->size);
    if (!n) return c.reply.error(n.error());
    if (int error = window_follows_size(c.in.nodeid)) return c.reply.error(error);
    fuse_write_out out{};
    out.size = static_cast<uint32_t>(std::min<uint64_t>(*n, in->size));
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::release(Call& c) {
    auto in = c.body.take<fuse_release_in>();
    if (!in) return c.reply.error(in.error());
    if (in->release_flags & FUSE_RELEASE_FLUSH) {
        (void)fs_.flush(c.ctx, c.in.nodeid, in->fh, in->lock_owner);
    }
    fs_.release(c.ctx, c.in.nodeid, in->fh, in->flags,
                (in->release_flags & FUSE_RELEASE_FLOCK_UNLOCK) != 0, in->lock_owner);
    // Closing a handle drops its locks: a parked SETLKW may now get its own.
    lock_waiter_.nudge();
    return c.reply.finish(0);
}

Outcome FuseServer::Impl::fsync(Call& c, bool dir) {
    auto in = c.body.take<fuse_fsync_in>();
    if (!in) return c.reply.error(in.error());
    const bool datasync = (in->fsync_flags & FUSE_FSYNC_FDATASYNC) != 0;
    if (dir) {
        auto r = fs_.fsyncdir(c.ctx, c.in.nodeid, in->fh, datasync);
        return c.reply.finish(r ? 0 : r.error());
    }
    // What the guest dirtied through the DAX window reaches the file only via the mapping.
    if (mapper_) {
        if (auto r = mapper_->sync(c.in.nodeid); !r) return c.reply.error(r.error());
    }
    auto r = fs_.fsync(c.ctx, c.in.nodeid, in->fh, datasync);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::flush(Call& c) {
    auto in = c.body.take<fuse_flush_in>();
    if (!in) return c.reply.error(in.error());
    auto r = fs_.flush(c.ctx, c.in.nodeid, in->fh, in->lock_owner);
    lock_waiter_.nudge();
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::fallocate(Call& c) {
    auto in = c.body.take<fuse_fallocate_in>();
    if (!in) return c.reply.error(in.error());
    auto r = fs_.fallocate(c.ctx, c.in.nodeid, in->fh, in->offset, in->length, in->mode);
    if (!r) return c.reply.error(r.error());
    return c.reply.finish(window_follows_size(c.in.nodeid));
}

Outcome FuseServer::Impl::lseek(Call& c) {
    auto in = c.body.take<fuse_lseek_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_lseek_out)) return c.reply.error(EINVAL);
    auto offset = fs_.lseek(c.ctx, c.in.nodeid, in->fh, in->offset, in->whence);
    if (!offset) return c.reply.error(offset.error());
    fuse_lseek_out out{};
    out.offset = *offset;
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::copy_file_range(Call& c) {
    auto in = c.body.take<fuse_copy_file_range_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_write_out)) return c.reply.error(EINVAL);
    // The reply counts bytes in 32 bits.
    const uint64_t length = std::min<uint64_t>(in->len, UINT32_MAX & ~uint64_t{4095});
    auto n = fs_.copy_file_range(c.ctx, c.in.nodeid, in->fh_in, in->off_in, in->nodeid_out,
                                 in->fh_out, in->off_out, length, in->flags);
    if (!n) return c.reply.error(n.error());
    if (int error = window_follows_size(in->nodeid_out)) return c.reply.error(error);
    fuse_write_out out{};
    out.size = static_cast<uint32_t>(std::min<uint64_t>(*n, length));
    return c.reply.reply(out);
}

}  // namespace vfsdax::fs
