// SPDX-License-Identifier: Apache-2.0
// Directory opcodes: OPENDIR, READDIR, READDIRPLUS (packed records, backend offsets), RELEASEDIR.
#include <algorithm>
#include <cstring>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

// Packs fuse_dirent or fuse_direntplus records into a reply of at most `limit` bytes.
class DirentPacker final : public DirSink {
public:
    DirentPacker(std::vector<std::byte>& buffer, std::size_t limit, bool plus,
                 const std::function<fuse_entry_out(const Entry&)>& convert)
        : buffer_(buffer), limit_(limit), plus_(plus), convert_(convert) {
        buffer_.clear();
    }

    bool add(const DirEntry& dirent, const Entry* entry) override {
        const std::size_t name_offset = plus_ ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
        const std::size_t record = FUSE_DIRENT_ALIGN(name_offset + dirent.name.size());
        if (buffer_.size() + record > limit_) return false;
        const std::size_t at = buffer_.size();
        buffer_.resize(at + record);  // zero-fills the padding
        std::byte* out = buffer_.data() + at;
        fuse_dirent head{};
        head.ino = dirent.ino;
        head.off = dirent.next_offset;
        head.namelen = static_cast<uint32_t>(dirent.name.size());
        head.type = dirent.type;
        if (plus_) {
            // No entry ("." and ".."): a zero nodeid tells the guest there is nothing to count.
            const fuse_entry_out entry_out = entry ? convert_(*entry) : fuse_entry_out{};
            std::memcpy(out, &entry_out, sizeof(entry_out));
            out += offsetof(fuse_direntplus, dirent);
        }
        std::memcpy(out, &head, FUSE_NAME_OFFSET);
        std::memcpy(out + FUSE_NAME_OFFSET, dirent.name.data(), dirent.name.size());
        return true;
    }

private:
    std::vector<std::byte>& buffer_;
    const std::size_t limit_;
    const bool plus_;
    const std::function<fuse_entry_out(const Entry&)>& convert_;
};

}  // namespace

Outcome FuseServer::Impl::opendir(Call& c) {
    auto in = c.body.take<fuse_open_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_open_out)) return c.reply.error(EINVAL);
    auto opened = fs_.opendir(c.ctx, c.in.nodeid, in->flags);
    if (!opened) return c.reply.error(opened.error());
    fuse_open_out out{};
    out.fh = opened->fh;
    out.open_flags = opened->open_flags;
    if (options_.cache == CachePolicy::Always) out.open_flags |= FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::readdir(Call& c, bool plus) {
    auto in = c.body.take<fuse_read_in>();
    if (!in) return c.reply.error(in.error());
    if (!c.reply.has_header()) return 0;
    const std::size_t limit = std::min<uint64_t>({in->size, max_write_, c.reply.room()});
    thread_local std::vector<std::byte> buffer;
    const std::function<fuse_entry_out(const Entry&)> convert = [this](const Entry& e) {
        return entry_out(e);
    };
    DirentPacker packer(buffer, limit, plus, convert);
    auto r = plus ? fs_.readdirplus(c.ctx, c.in.nodeid, in->fh, in->offset, packer)
                  : fs_.readdir(c.ctx, c.in.nodeid, in->fh, in->offset, packer);
    // Entries already packed were counted (readdirplus): they must reach the guest, so a
    // later failure only ends the listing early.
    if (!r && buffer.empty()) return c.reply.error(r.error());
    if (!c.reply.payload().write(buffer.data(), buffer.size())) return c.reply.error(EIO);
    return c.reply.finish(0);
}

Outcome FuseServer::Impl::releasedir(Call& c) {
    auto in = c.body.take<fuse_release_in>();
    if (!in) return c.reply.error(in.error());
    fs_.releasedir(c.ctx, c.in.nodeid, in->fh);
    return c.reply.finish(0);
}

}  // namespace vfsdax::fs
