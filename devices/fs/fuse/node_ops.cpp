// SPDX-License-Identifier: Apache-2.0
// Name-space and attribute opcodes: LOOKUP, FORGET, GETATTR, SETATTR, links, dirs, STATFS, ...
#include <unistd.h>

#include <climits>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

// The tail of a request (names, link targets) in a per-thread buffer: no allocation per call.
Result<fuse::StringList> strings(Call& c, std::size_t max) {
    thread_local std::vector<char> buffer;
    if (auto r = c.body.take_rest(buffer, max); !r) return std::unexpected(r.error());
    return fuse::StringList(buffer);
}

// Room for a name: generous, so an overlong one gets ENAMETOOLONG from the name check rather
// than E2BIG here; the bound only caps the copy.
constexpr std::size_t kNameBytes = PATH_MAX;

}  // namespace

template <typename Make>
Outcome FuseServer::Impl::reply_named_entry(Call& c, Make&& make) {
    auto names = strings(c, kNameBytes);
    if (!names) return c.reply.error(names.error());
    auto name = names->next_name();
    if (!name) return c.reply.error(name.error());
    if (c.reply.room() < sizeof(fuse_entry_out)) return c.reply.error(EINVAL);
    Result<Entry> entry = make(*name);
    if (!entry) return c.reply.error(entry.error());
    return reply_entry(c, *entry);
}

Outcome FuseServer::Impl::lookup(Call& c) {
    return reply_named_entry(
        c, [&](std::string_view name) { return fs_.lookup(c.ctx, c.in.nodeid, name); });
}

Outcome FuseServer::Impl::forget(Call& c) {
    if (auto in = c.body.take<fuse_forget_in>()) fs_.forget(c.in.nodeid, in->nlookup);
    return 0;
}

Outcome FuseServer::Impl::batch_forget(Call& c) {
    auto in = c.body.take<fuse_batch_forget_in>();
    if (!in) return 0;
    // Entries past the end of the body are not there: stop at the first short one.
    for (uint32_t i = 0; i < in->count; ++i) {
        auto one = c.body.take<fuse_forget_one>();
        if (!one) break;
        fs_.forget(one->nodeid, one->nlookup);
    }
    return 0;
}

Outcome FuseServer::Impl::getattr(Call& c) {
    auto in = c.body.take<fuse_getattr_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_attr_out)) return c.reply.error(EINVAL);
    std::optional<FileHandle> fh;
    if (in->getattr_flags & FUSE_GETATTR_FH) fh = in->fh;
    auto attr = fs_.getattr(c.ctx, c.in.nodeid, fh);
    if (!attr) return c.reply.error(attr.error());
    return c.reply.reply(attr_out(*attr));
}

Outcome FuseServer::Impl::setattr(Call& c) {
    auto in = c.body.take<fuse_setattr_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_attr_out)) return c.reply.error(EINVAL);
    SetAttrIn set;
    set.valid = in->valid;
    if (in->valid & FATTR_FH) set.fh = in->fh;
    set.mode = in->mode;
    set.uid = in->uid;
    set.gid = in->gid;
    set.size = in->size;
    set.atime = {static_cast<time_t>(in->atime), static_cast<long>(in->atimensec)};
    set.mtime = {static_cast<time_t>(in->mtime), static_cast<long>(in->mtimensec)};
    if (in->atimensec >= 1000000000 || in->mtimensec >= 1000000000) return c.reply.error(EINVAL);
    auto attr = fs_.setattr(c.ctx, c.in.nodeid, set);
    if (!attr) return c.reply.error(attr.error());
    if (in->valid & FATTR_SIZE) {
        if (int error = window_follows_size(c.in.nodeid)) return c.reply.error(error);
    }
    return c.reply.reply(attr_out(*attr));
}

Outcome FuseServer::Impl::readlink(Call& c) {
    auto target = fs_.readlink(c.ctx, c.in.nodeid);
    if (!target) return c.reply.error(target.error());
    if (!c.reply.payload().write(target->data(), target->size())) return c.reply.error(ERANGE);
    return c.reply.finish(0);
}

Outcome FuseServer::Impl::symlink(Call& c) {
    // Name first, then the target, each NUL-terminated.
    auto names = strings(c, kNameBytes + PATH_MAX);
    if (!names) return c.reply.error(names.error());
    auto name = names->next_name();
    if (!name) return c.reply.error(name.error());
    auto target = names->next(PATH_MAX - 1);
    if (!target) return c.reply.error(target.error());
    if (c.reply.room() < sizeof(fuse_entry_out)) return c.reply.error(EINVAL);
    auto entry = fs_.symlink(c.ctx, c.in.nodeid, *name, *target);
    if (!entry) return c.reply.error(entry.error());
    return reply_entry(c, *entry);
}

Outcome FuseServer::Impl::mknod(Call& c) {
    auto in = c.body.take<fuse_mknod_in>();
    if (!in) return c.reply.error(in.error());
    return reply_named_entry(c, [&](std::string_view name) {
        return fs_.mknod(c.ctx, c.in.nodeid, name, in->mode, in->rdev, in->umask);
    });
}

Outcome FuseServer::Impl::mkdir(Call& c) {
    auto in = c.body.take<fuse_mkdir_in>();
    if (!in) return c.reply.error(in.error());
    return reply_named_entry(c, [&](std::string_view name) {
        return fs_.mkdir(c.ctx, c.in.nodeid, name, in->mode, in->umask);
    });
}

Outcome FuseServer::Impl::unlink(Call& c) {
    auto names = strings(c, kNameBytes);
    if (!names) return c.reply.error(names.error());
    auto name = names->next_name();
    if (!name) return c.reply.error(name.error());
    auto r = fs_.unlink(c.ctx, c.in.nodeid, *name);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::rmdir(Call& c) {
    auto names = strings(c, kNameBytes);
    if (!names) return c.reply.error(names.error());
    auto name = names->next_name();
    if (!name) return c.reply.error(name.error());
    auto r = fs_.rmdir(c.ctx, c.in.nodeid, *name);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::rename(Call& c, bool with_flags) {
    uint64_t new_dir = 0;
    uint32_t flags = 0;
    if (with_flags) {
        auto in = c.body.take<fuse_rename2_in>();
        if (!in) return c.reply.error(in.error());
        new_dir = in->newdir;
        flags = in->flags;
    } else {
        auto in = c.body.take<fuse_rename_in>();
        if (!in) return c.reply.error(in.error());
        new_dir = in->newdir;
    }
    auto names = strings(c, 2 * kNameBytes);
    if (!names) return c.reply.error(names.error());
    auto name = names->next_name();
    if (!name) return c.reply.error(name.error());
    auto new_name = names->next_name();
    if (!new_name) return c.reply.error(new_name.error());
    auto r = fs_.rename(c.ctx, c.in.nodeid, *name, new_dir, *new_name, flags);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::link(Call& c) {
    auto in = c.body.take<fuse_link_in>();
    if (!in) return c.reply.error(in.error());
    // The request's nodeid is the new parent; the existing node comes in the body.
    return reply_named_entry(c, [&](std::string_view name) {
        return fs_.link(c.ctx, in->oldnodeid, c.in.nodeid, name);
    });
}

Outcome FuseServer::Impl::statfs(Call& c) {
    if (c.reply.room() < sizeof(fuse_statfs_out)) return c.reply.error(EINVAL);
    auto st = fs_.statfs(c.ctx, c.in.nodeid);
    if (!st) return c.reply.error(st.error());
    fuse_statfs_out out{};
    out.st.blocks = st->f_blocks;
    out.st.bfree = st->f_bfree;
    out.st.bavail = st->f_bavail;
    out.st.files = st->f_files;
    out.st.ffree = st->f_ffree;
    out.st.bsize = static_cast<uint32_t>(st->f_bsize);
    out.st.namelen = static_cast<uint32_t>(st->f_namemax);
    out.st.frsize = static_cast<uint32_t>(st->f_frsize);
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::access(Call& c) {
    auto in = c.body.take<fuse_access_in>();
    if (!in) return c.reply.error(in.error());
    if (options_.read_only && (in->mask & W_OK)) return c.reply.error(EROFS);
    auto r = fs_.access(c.ctx, c.in.nodeid, in->mask);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::syncfs(Call& c) {
    auto in = c.body.take<fuse_syncfs_in>();
    if (!in) return c.reply.error(in.error());
    // The window first (what the guest dirtied through DAX reaches the files), then the host
    // file system; both run even if the first fails, and the first error is the reply.
    std::expected<void, int> window;
    if (mapper_) window = mapper_->sync_all();
    auto r = fs_.syncfs(c.ctx);
    if (!window) return c.reply.error(window.error());
    return c.reply.finish(r ? 0 : r.error());
}

}  // namespace vfsdax::fs
