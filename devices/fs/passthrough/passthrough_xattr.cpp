// SPDX-License-Identifier: Apache-2.0
// PassthroughFs: extended attributes, on any inode type, through the /proc magic link.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>

#include "passthrough/passthrough_fs.hpp"

namespace vfsdax::fs::passthrough {

namespace {

// Names go to the kernel as C strings: an embedded NUL would silently shorten the name.
Result<std::string> xattr_name(std::string_view name) {
    if (name.empty() || name.find('\0') != std::string_view::npos) return std::unexpected(EINVAL);
    if (name.size() > XATTR_NAME_MAX) return std::unexpected(ERANGE);
    return std::string(name);
}

}  // namespace

// The f*xattr calls refuse O_PATH fds, and opening a fifo or device to get a real fd is what
// the server must not do; the path calls on "/proc/self/fd/N" reach the inode itself.
Result<std::string> PassthroughFs::xattr_path(NodeId node, PathFdHolder& holder) const {
    auto in = inode(node);
    if (!in) return std::unexpected(in.error());
    auto fd = inodes_->path_fd(**in);
    if (!fd) return std::unexpected(fd.error());
    holder.emplace(std::move(*fd));
    return proc_path(holder->get());
}

Result<void> PassthroughFs::setxattr(const RequestContext&, NodeId node, std::string_view name,
                                     std::span<const std::byte> value, uint32_t flags) {
    if ((flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) != 0) {
        return std::unexpected(EINVAL);
    }
    auto cname = xattr_name(name);
    if (!cname) return std::unexpected(cname.error());
    PathFdHolder holder;
    auto path = xattr_path(node, holder);
    if (!path) return std::unexpected(path.error());
    if (::setxattr(path->c_str(), cname->c_str(), value.data(), value.size(),
                   static_cast<int>(flags)) != 0) {
        return std::unexpected(errno);
    }
    return {};
}

Result<std::size_t> PassthroughFs::getxattr(const RequestContext&, NodeId node,
                                            std::string_view name, std::span<std::byte> buffer) {
    auto cname = xattr_name(name);
    if (!cname) return std::unexpected(cname.error());
    PathFdHolder holder;
    auto path = xattr_path(node, holder);
    if (!path) return std::unexpected(path.error());
    // Size 0 asks for the size; a buffer too small gives ERANGE: the kernel's own contract.
    const ssize_t n = ::getxattr(path->c_str(), cname->c_str(), buffer.data(), buffer.size());
    if (n < 0) return std::unexpected(errno);
    return static_cast<std::size_t>(n);
}

Result<std::size_t> PassthroughFs::listxattr(const RequestContext&, NodeId node,
                                             std::span<std::byte> buffer) {
    PathFdHolder holder;
    auto path = xattr_path(node, holder);
    if (!path) return std::unexpected(path.error());
    const ssize_t n =
        ::listxattr(path->c_str(), reinterpret_cast<char*>(buffer.data()), buffer.size());
    if (n < 0) return std::unexpected(errno);
    return static_cast<std::size_t>(n);
}

Result<void> PassthroughFs::removexattr(const RequestContext&, NodeId node, std::string_view name) {
    auto cname = xattr_name(name);
    if (!cname) return std::unexpected(cname.error());
    PathFdHolder holder;
    auto path = xattr_path(node, holder);
    if (!path) return std::unexpected(path.error());
    if (::removexattr(path->c_str(), cname->c_str()) != 0) return std::unexpected(errno);
    return {};
}

}  // namespace vfsdax::fs::passthrough
