// SPDX-License-Identifier: Apache-2.0
// epoll-based event loop.
#include "event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <cerrno>

#include "kvm.hpp"

namespace vfsdax::vmm {

std::expected<std::unique_ptr<EventLoop>, std::string> EventLoop::create() {
    std::unique_ptr<EventLoop> loop(new EventLoop);
    loop->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!loop->epoll_) return std::unexpected(errno_text("epoll_create1"));
    loop->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!loop->stop_event_) return std::unexpected(errno_text("eventfd"));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = loop->stop_event_.get();
    if (::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_ADD, ev.data.fd, &ev) < 0)
        return std::unexpected(errno_text("epoll_ctl"));
    return loop;
}

std::expected<void, std::string> EventLoop::add(int fd, Handler handler) {
    std::lock_guard lock(mutex_);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
        return std::unexpected(errno_text("epoll_ctl"));
    handlers_[fd] = std::make_shared<Handler>(std::move(handler));
    return {};
}

void EventLoop::remove(int fd) {
    std::lock_guard lock(mutex_);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    handlers_.erase(fd);
}

void EventLoop::run() {
    epoll_event events[16];
    for (;;) {
        const int n = ::epoll_wait(epoll_.get(), events, 16, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return;
        for (int i = 0; i < n; ++i) {
            if (events[i].data.fd == stop_event_.get()) return;
            std::shared_ptr<Handler> handler;
            {
                std::lock_guard lock(mutex_);
                auto it = handlers_.find(events[i].data.fd);
                if (it != handlers_.end()) handler = it->second;
            }
            if (handler) (*handler)();
        }
    }
}

void EventLoop::stop() {
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(stop_event_.get(), &one, sizeof(one));
}

}  // namespace vfsdax::vmm
