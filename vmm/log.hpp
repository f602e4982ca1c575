// SPDX-License-Identifier: Apache-2.0
// log: leveled messages to stderr for the VMM.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdio>

namespace vfsdax::vmm {

enum class LogLevel { Error = 0, Warn, Info, Debug };

inline std::atomic<LogLevel> g_log_level{LogLevel::Info};

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (level > g_log_level.load(std::memory_order_relaxed)) return;
    static constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
    // One write per message, so lines from several threads do not interleave.
    std::string line = fmt::format("vfsdax-vmm: {}: ", kNames[static_cast<int>(level)]);
    line += fmt::format(format, std::forward<Args>(args)...);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace vfsdax::vmm
