// SPDX-License-Identifier: Apache-2.0
// IndexTable: one entry for each of the 2^16 ring indices or buffer ids a driver can write.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace vfsdax::virtio {

// Covering every 16-bit value lets one load check an index the guest wrote: an entry of 0 means
// "no such index" (beyond the ring). The entries start zeroed in one call rather than by a loop
// over 65536 entries, so activating a queue stays cheap in unoptimised and sanitizer builds too
// (the fuzzers activate a queue per input); only the ring's own entries are then written.
// A small table comes from calloc (reused heap memory); a large one from an anonymous mapping,
// where only the pages a queue touches cost a fault (a sanitizer's calloc touches them all).
template <typename T>
class IndexTable {
public:
    static constexpr std::size_t kEntries = std::size_t{UINT16_MAX} + 1;

    IndexTable() {
        void* p = kMapped ? mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                          : std::calloc(kEntries, sizeof(T));
        if (p == (kMapped ? MAP_FAILED : nullptr)) throw std::bad_alloc();
        entries_.reset(static_cast<T*>(p));
    }
    T& operator[](uint16_t index) { return entries_.get()[index]; }
    const T& operator[](uint16_t index) const { return entries_.get()[index]; }
    T* begin() { return entries_.get(); }

private:
    static constexpr std::size_t kBytes = kEntries * sizeof(T);
    static constexpr bool kMapped = kBytes >= (std::size_t{128} << 10);
    struct Free {
        void operator()(T* p) const {
            if (kMapped) {
                munmap(p, kBytes);
            } else {
                std::free(p);
            }
        }
    };
    std::unique_ptr<T, Free> entries_;
};

}  // namespace vfsdax::virtio
