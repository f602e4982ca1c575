// SPDX-License-Identifier: Apache-2.0
// This process's threads as the kernel shows them (/proc/self/task): names, wake-ups, masks.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vfsdax::test {

// Thread ids whose name (comm) is `name`.
inline std::vector<std::string> tasks_named(const std::string& name) {
    std::vector<std::string> tids;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        std::ifstream in(entry.path() / "comm");
        std::string comm;
        // A thread may have ended since the listing: its comm reads empty.
        if (std::getline(in, comm) && comm == name) tids.push_back(entry.path().filename());
    }
    return tids;
}

// Waits up to `timeout` for exactly `count` threads named `name` (an ended thread's task
// lingers briefly after its join); the tids seen last.
inline std::vector<std::string> await_tasks_named(
    const std::string& name, std::size_t count,
    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto tids = tasks_named(name);
        if (tids.size() == count || std::chrono::steady_clock::now() > deadline) return tids;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// A field of /proc/self/task/TID/status ("voluntary_ctxt_switches", "SigBlk"), as text.
inline std::optional<std::string> task_status(const std::string& tid, const std::string& field) {
    std::ifstream in("/proc/self/task/" + tid + "/status");
    const std::string key = field + ":";
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(key)) return line.substr(line.find_first_not_of(" \t", key.size()));
    }
    return std::nullopt;
}

// How often the thread went to sleep and was woken since it started.
inline uint64_t voluntary_switches(const std::string& tid) {
    auto field = task_status(tid, "voluntary_ctxt_switches");
    return field ? std::stoull(*field) : 0;
}

}  // namespace vfsdax::test
