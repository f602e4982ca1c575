// SPDX-License-Identifier: Apache-2.0
// Maps a file read-only (MAP_PRIVATE), or names why it cannot.
#include "mapped_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::vmm {

std::expected<MappedFile, std::string> MappedFile::open(const std::string& path) {
    const auto failed = [&](const char* what) {
        return std::unexpected(fmt::format("{}: {}: {}", path, what, std::strerror(errno)));
    };
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return failed("open");
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return failed("fstat");
    if (!S_ISREG(st.st_mode)) return std::unexpected(fmt::format("{}: not a regular file", path));
    // mmap refuses a zero length; an empty file maps to an empty span.
    if (st.st_size == 0) return MappedFile(nullptr, 0);
    const auto size = static_cast<std::size_t>(st.st_size);
    void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (data == MAP_FAILED) return failed("mmap");
    return MappedFile(static_cast<const std::byte*>(data), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace vfsdax::vmm
