// SPDX-License-Identifier: Apache-2.0
// Request body parsing, NUL-terminated string splitting and reply header placement.
#include "fuse/wire.hpp"

#include <climits>

namespace vfsdax::fs::fuse {

Result<void> RequestBody::take_bytes(void* out, std::size_t n) {
    if (n > left_) return std::unexpected(EINVAL);
    if (!reader_.read(out, n)) return std::unexpected(EINVAL);
    left_ -= n;
    return {};
}

void RequestBody::consumed(uint64_t n) {
    reader_.advance(n);
    left_ -= n;
}

Result<void> RequestBody::take_rest(std::vector<char>& out, std::size_t max) {
    if (left_ > max) return std::unexpected(E2BIG);
    out.resize(left_);
    return take_bytes(out.data(), out.size());
}

Result<std::string_view> StringList::next(std::size_t max_len) {
    const std::size_t end = data_.find('\0');
    if (end == std::string_view::npos || end == 0) return std::unexpected(EINVAL);
    if (end > max_len) return std::unexpected(ENAMETOOLONG);
    const std::string_view s = data_.substr(0, end);
    data_.remove_prefix(end + 1);
    return s;
}

Result<std::string_view> StringList::next_name() {
    auto name = next(NAME_MAX);
    if (name && name->find('/') != std::string_view::npos) return std::unexpected(EINVAL);
    return name;
}

ReplyWriter::ReplyWriter(virtio::ChainWriter& writer, uint64_t unique)
    : writer_(writer), header_at_(writer), unique_(unique), start_(writer.bytes_written()) {
    if (writer_.remaining() < sizeof(fuse_out_header)) return;
    writer_.advance(sizeof(fuse_out_header));
    has_header_ = true;
}

uint32_t ReplyWriter::finish(int error) {
    if (!has_header_) return 0;
    fuse_out_header header{};
    header.unique = unique_;
    header.error = -error;
    header.len = error ? sizeof(header) : static_cast<uint32_t>(writer_.bytes_written() - start_);
    // The constructor checked the room, so this write cannot come up short.
    virtio::ChainWriter at = header_at_;
    (void)at.write_object(header);
    return header.len;
}

fuse_attr to_fuse_attr(const Attr& attr) {
    const struct stat& st = attr.st;
    fuse_attr out{};
    out.ino = st.st_ino;
    out.size = st.st_size;
    out.blocks = st.st_blocks;
    out.atime = st.st_atim.tv_sec;
    out.mtime = st.st_mtim.tv_sec;
    out.ctime = st.st_ctim.tv_sec;
    out.atimensec = st.st_atim.tv_nsec;
    out.mtimensec = st.st_mtim.tv_nsec;
    out.ctimensec = st.st_ctim.tv_nsec;
    out.mode = st.st_mode;
    out.nlink = st.st_nlink;
    out.uid = st.st_uid;
    out.gid = st.st_gid;
    // glibc's dev_t and the kernel's 32-bit new_encode_dev agree for every major below 4096.
    out.rdev = static_cast<uint32_t>(st.st_rdev);
    out.blksize = st.st_blksize;
    out.flags = attr.flags;
    return out;
}

}  // namespace vfsdax::fs::fuse
