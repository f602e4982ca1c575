// SPDX-License-Identifier: Apache-2.0
// Extended attribute opcodes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
#include <sys/xattr.h>

#include <algorithm>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

int FuseServer::Impl::xattr_policy(std::string_view name) const {
    // File capabilities: the host grants them to whoever runs the file, so a guest that sets
    // them hands out privileges on the host (the kernel checks CAP_SETFCAP, which a root
    // server has). trusted.*: root-only on the host (overlayfs keeps its metadata there).
    if (name == "security.capability" && !options_.xattr_capability) return EPERM;
    if (name.starts_with("trusted.") && !options_.xattr_trusted) return EPERM;
    return 0;
}

Outcome FuseServer::Impl::setxattr(Call& c) {
    // Without FUSE_SETXATTR_EXT (never offered) the kernel sends the short fuse_setxattr_in.
    fuse_setxattr_in in{};
    if (auto r = c.body.take_bytes(&in, FUSE_COMPAT_SETXATTR_IN_SIZE); !r) {
        return c.reply.error(r.error());
    }
    if (in.size > XATTR_SIZE_MAX) return c.reply.error(E2BIG);
    thread_local std::vector<char> buffer;
    if (auto r = c.body.take_rest(buffer, XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX); !r) {
        return c.reply.error(r.error());
    }
    fuse::StringList strings(buffer);
    auto name = strings.next(XATTR_NAME_MAX);
    if (!name) return c.reply.error(name.error());
    // The value is exactly the rest of the body.
    const std::size_t value_at = name->size() + 1;
    if (buffer.size() - value_at != in.size) return c.reply.error(EINVAL);
    const auto* value = reinterpret_cast<const std::byte*>(buffer.data() + value_at);
    if (int refused = xattr_policy(*name)) return c.reply.error(refused);
    auto r = fs_.setxattr(c.ctx, c.in.nodeid, *name, {value, in.size}, in.flags);
    return c.reply.finish(r ? 0 : r.error());
}

Outcome FuseServer::Impl::getxattr(Call& c, bool list) {
    auto in = c.body.take<fuse_getxattr_in>();
    if (!in) return c.reply.error(in.error());
    thread_local std::vector<char> names;
    std::string_view name;
    if (!list) {
        if (auto r = c.body.take_rest(names, XATTR_NAME_MAX + 1); !r) {
            return c.reply.error(r.error());
        }
        auto n = fuse::StringList(names).next(XATTR_NAME_MAX);
        if (!n) return c.reply.error(n.error());
        name = *n;
    }
    if (in->size == 0) {
        // Size probe: the reply is fuse_getxattr_out with the length needed.
        if (c.reply.room() < sizeof(fuse_getxattr_out)) return c.reply.error(EINVAL);
        auto needed = list ? fs_.listxattr(c.ctx, c.in.nodeid, {})
                           : fs_.getxattr(c.ctx, c.in.nodeid, name, {});
        if (!needed) return c.reply.error(needed.error());
        fuse_getxattr_out out{};
        out.size = static_cast<uint32_t>(*needed);
        return c.reply.reply(out);
    }
    const std::size_t size = std::min<uint64_t>({in->size, XATTR_SIZE_MAX, c.reply.room()});
    thread_local std::vector<std::byte> value;
    value.resize(size);
    auto got = list ? fs_.listxattr(c.ctx, c.in.nodeid, value)
                    : fs_.getxattr(c.ctx, c.in.nodeid, name, value);
    if (!got) return c.reply.error(got.error());
    if (*got > size) return c.reply.error(ERANGE);
    if (!c.reply.payload().write(value.data(), *got)) return c.reply.error(ERANGE);
    return c.reply.finish(0);
}

Outcome FuseServer::Impl::removexattr(Call& c) {
    thread_local std::vector<char> buffer;
    if (auto r = c.body.take_rest(buffer, XATTR_NAME_MAX + 1); !r) return c.reply.error(r.error());
    auto name = fuse::StringList(buffer).next(XATTR_NAME_MAX);
    if (!name) return c.reply.error(name.error());
    if (int refused = xattr_policy(*name)) return c.reply.error(refused);
    auto r = fs_.removexattr(c.ctx, c.in.nodeid, *name);
    return c.reply.finish(r ? 0 : r.error());
}

}  // namespace vfsdax::fs
