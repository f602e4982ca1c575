// SPDX-License-Identifier: Apache-2.0
// EventLoop: epoll over file descriptors, run on one thread (the VMM's main thread).
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "vfsdax/util/unique_fd.hpp"

namespace vfsdax::vmm {

class EventLoop {
public:
    using Handler = std::function<void()>;

    static std::expected<std::unique_ptr<EventLoop>, std::string> create();

    // `handler` runs on the loop thread whenever `fd` is readable. Any thread may add or remove.
    std::expected<void, std::string> add(int fd, Handler handler);
    void remove(int fd);

    // Runs handlers until stop(); returns at once if stop() came first.
    void run();
    void stop();  // any thread, async-signal-unsafe callers included (it only writes an eventfd)

private:
    EventLoop() = default;
    UniqueFd epoll_;
    UniqueFd stop_event_;
    std::mutex mutex_;
    std::unordered_map<int, std::shared_ptr<Handler>> handlers_;
};

}  // namespace vfsdax::vmm
