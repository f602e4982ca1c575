// SPDX-License-Identifier: Apache-2.0
// GuestAddress: a guest-physical address as its own type, so GPAs never mix with host values.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

namespace vfsdax {

class GuestAddress {
public:
    constexpr GuestAddress() = default;
    constexpr explicit GuestAddress(uint64_t value) : value_(value) {}

    constexpr uint64_t raw() const { return value_; }

    // Guest-supplied offsets may wrap the 64-bit space; callers must see that, not a small address.
    constexpr std::optional<GuestAddress> checked_add(uint64_t offset) const {
        uint64_t sum;
        if (__builtin_add_overflow(value_, offset, &sum)) return std::nullopt;
        return GuestAddress(sum);
    }

    constexpr bool is_aligned(uint64_t alignment) const { return (value_ & (alignment - 1)) == 0; }

    constexpr auto operator<=>(const GuestAddress&) const = default;

private:
    uint64_t value_ = 0;
};

}  // namespace vfsdax
