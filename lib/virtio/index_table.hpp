// IndexTable: one entry for each of the 2^16 ring indices or buffer ids a driver can write.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace vfsdax::virtio {

// Covering every 16-bit value lets one load check an index the guest wrote: an entry of 0 means
// "no such index" (beyond the ring). Zeroed by calloc in one call rather than by a loop over
// 65536 entries, so activating a queue stays cheap in unoptimised and sanitizer builds too
// (the fuzzers activate a queue per input); only the ring's own entries are then written.
template <typename T>
class IndexTable {
public:
    static constexpr std::size_t kEntries = std::size_t{UINT16_MAX} + 1;

    IndexTable() : entries_(static_cast<T*>(std::calloc(kEntries, sizeof(T)))) {
        if (!entries_) throw std::bad_alloc();
    }
    T& operator[](uint16_t index) { return entries_.get()[index]; }
    const T& operator[](uint16_t index) const { return entries_.get()[index]; }
    T* begin() { return entries_.get(); }

private:
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> entries_;
};

}  // namespace vfsdax::virtio
