// SPDX-License-Identifier: Apache-2.0
// DAX window opcodes: SETUPMAPPING and REMOVEMAPPING, through the Mapper (ENOSYS without one),
// and the window following a size change.
#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

// [offset, offset + length) inside [0, size), without wrapping.
bool fits(uint64_t offset, uint64_t length, uint64_t size) {
    return length != 0 && offset <= size && length <= size - offset;
}

}  // namespace

Outcome FuseServer::Impl::setup_mapping(Call& c) {
    if (!mapper_) return c.reply.error(ENOSYS);
    auto in = c.body.take<fuse_setupmapping_in>();
    if (!in) return c.reply.error(in.error());
    constexpr uint64_t kKnownFlags = FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE;
    if (in->flags & ~kKnownFlags) return c.reply.error(EINVAL);
    if (!fits(in->moffset, in->len, mapper_->window_size())) return c.reply.error(EINVAL);
    if (in->foffset + in->len < in->foffset) return c.reply.error(EINVAL);
    const bool writable = (in->flags & FUSE_SETUPMAPPING_FLAG_WRITE) != 0;
    if (writable && options_.read_only) return c.reply.error(EROFS);
    // The Linux driver sends fh = -1: map by node.
    std::optional<FileHandle> fh;
    if (in->fh != UINT64_MAX) fh = in->fh;
    const NodeId node = c.in.nodeid;
    const uint64_t window_offset = in->moffset;
    auto r = fs_.extents(c.ctx, node, fh, in->foffset, in->len, writable,
                         [&](std::span<const FileExtent> extents) {
                             return mapper_->map(window_offset, extents, writable, node);
                         });
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::remove_mapping(Call& c) {
    if (!mapper_) return c.reply.error(ENOSYS);
    auto in = c.body.take<fuse_removemapping_in>();
    if (!in) return c.reply.error(in.error());
    if (in->count == 0 || in->count > c.body.left() / sizeof(fuse_removemapping_one)) {
        return c.reply.error(EINVAL);
    }
    for (uint32_t i = 0; i < in->count; ++i) {
        auto one = c.body.take<fuse_removemapping_one>();
        if (!one) return c.reply.error(one.error());
        if (!fits(one->moffset, one->len, mapper_->window_size())) return c.reply.error(EINVAL);
        if (auto r = mapper_->unmap(one->moffset, one->len); !r) return c.reply.error(r.error());
    }
    return c.reply.finish(0);
}

int FuseServer::Impl::window_follows_size(NodeId node) {
    if (!mapper_) return 0;
    auto r = mapper_->follow_file_size(node);
    return r ? 0 : r.error();
}

}  // namespace vfsdax::fs
