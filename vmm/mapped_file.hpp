// SPDX-License-Identifier: Apache-2.0
// MappedFile: a whole file mapped read-only, for the kernel and initrd the VMM copies into RAM.
#pragma once

#include <cstddef>
#include <expected>
#include <span>
#include <string>

namespace vfsdax::vmm {

// Mapping, not reading: the loader copies each part once, straight from the page cache into
// guest RAM (a buffered read of a 60 MiB vmlinux costs seconds when the VMM runs emulated).
// Owns the mapping; movable, not copyable.
class MappedFile {
public:
    // The error names the file and the reason.
    static std::expected<MappedFile, std::string> open(const std::string& path);

    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&&) = delete;
    ~MappedFile();

    std::span<const std::byte> bytes() const { return {data_, size_}; }

private:
    MappedFile(const std::byte* data, std::size_t size) : data_(data), size_(size) {}
    const std::byte* data_;
    std::size_t size_;
};

}  // namespace vfsdax::vmm
