// SPDX-License-Identifier: Apache-2.0
// Descriptor counting and a scoped soft RLIMIT_NOFILE, for tests of the servers' fd budgets.
#pragma once

#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <filesystem>

namespace vfsdax::test {

// Descriptors the process has open.
inline std::size_t open_fd_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n - 1;  // the iterator's own
}

// RLIMIT_NOFILE's soft limit lowered for a scope, so that a flood reaches it quickly.
struct SoftFdLimit {
    rlimit saved{};
    explicit SoftFdLimit(rlim_t soft) {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
        rlimit lowered = saved;
        lowered.rlim_cur = soft;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    }
    ~SoftFdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

}  // namespace vfsdax::test
