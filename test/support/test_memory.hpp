// SPDX-License-Identifier: Apache-2.0
// TestMemory: guest RAM for unit tests, with a driver-side allocator and direct access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "vfsdax/memory/guest_memory.hpp"

namespace vfsdax::test {

// One contiguous RAM region at `base`. The driver model reaches it through raw(), the device
// through memory(): the two sides never share translation code.
class TestMemory {
public:
    explicit TestMemory(uint64_t size = 1 << 20, uint64_t base = 0x100000);

    GuestMemory& memory() { return memory_; }
    uint64_t base() const { return base_; }
    uint64_t size() const { return size_; }

    // Driver-side bump allocation; aborts the test (throws) when exhausted.
    GuestAddress alloc(uint64_t size, uint64_t align = 16);
    // Host pointer for a driver-owned guest address (throws when outside this RAM).
    std::byte* raw(GuestAddress addr, uint64_t len = 1);

    template <typename T>
    T load(GuestAddress addr) {
        T value;
        std::memcpy(&value, raw(addr, sizeof(T)), sizeof(T));
        return value;
    }
    template <typename T>
    void store(GuestAddress addr, const T& value) {
        std::memcpy(raw(addr, sizeof(T)), &value, sizeof(T));
    }

private:
    uint64_t size_;
    uint64_t base_;
    uint64_t next_;
    std::unique_ptr<std::byte[]> ram_;
    GuestMemory memory_;
};

}  // namespace vfsdax::test
