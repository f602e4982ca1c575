// SPDX-License-Identifier: Apache-2.0
// DirStream: held entries first, then getdents64 from the fd's own position.
#include "passthrough/dir_stream.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace vfsdax::fs::passthrough {

namespace {

// struct linux_dirent64, as getdents64(2) fills it.
struct HostDirent {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

}  // namespace

Result<void> DirStream::seek(int fd, uint64_t offset) {
    if (positioned_ && offset != 0) {
        if (offset == start_offset_) {
            next_ = 0;
            return {};
        }
        const auto at = std::find_if(held_.begin(), held_.end(),
                                     [offset](const Entry& e) { return e.next_offset == offset; });
        if (at != held_.end()) {
            held_.erase(held_.begin(), at + 1);
            start_offset_ = offset;
            next_ = 0;
            return {};
        }
    }
    positioned_ = false;
    held_.clear();
    next_ = 0;
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return std::unexpected(errno);
    start_offset_ = offset;
    positioned_ = true;
    return {};
}

Result<const DirStream::Entry*> DirStream::peek(int fd) {
    if (next_ == held_.size()) {
        if (auto filled = fill(fd); !filled) return std::unexpected(filled.error());
        if (next_ == held_.size()) return nullptr;
    }
    return &held_[next_];
}

Result<void> DirStream::fill(int fd) {
    alignas(HostDirent) std::byte buffer[16384];
    const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
    if (n < 0) return std::unexpected(errno);
    for (long pos = 0; pos < n;) {
        const auto* d = reinterpret_cast<const HostDirent*>(buffer + pos);
        if (d->reclen == 0) return std::unexpected(EIO);
        pos += d->reclen;
        held_.push_back(Entry{d->ino, static_cast<uint64_t>(d->off), d->type,
                              std::string(d->name, ::strnlen(d->name, d->reclen))});
    }
    return {};
}

}  // namespace vfsdax::fs::passthrough
