// SPDX-License-Identifier: Apache-2.0
// TestMemory: a zeroed RAM buffer registered as one guest region.
#include "test_memory.hpp"

#include <stdexcept>

namespace vfsdax::test {

TestMemory::TestMemory(uint64_t size, uint64_t base)
    : size_(size), base_(base), next_(base), ram_(new std::byte[size]()) {
    if (!memory_.add_region(GuestAddress(base), size, ram_.get())) {
        throw std::runtime_error("TestMemory: cannot register region");
    }
}

GuestAddress TestMemory::alloc(uint64_t size, uint64_t align) {
    const uint64_t start = (next_ + align - 1) & ~(align - 1);
    if (start + size > base_ + size_) throw std::runtime_error("TestMemory: out of guest RAM");
    next_ = start + size;
    return GuestAddress(start);
}

std::byte* TestMemory::raw(GuestAddress addr, uint64_t len) {
    if (addr.raw() < base_ || addr.raw() - base_ > size_ || len > size_ - (addr.raw() - base_)) {
        throw std::runtime_error("TestMemory: address outside guest RAM");
    }
    return ram_.get() + (addr.raw() - base_);
}

}  // namespace vfsdax::test
