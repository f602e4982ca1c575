// SPDX-License-Identifier: Apache-2.0
// Lock opcodes: GETLK, SETLK, SETLKW (parked off the pool while blocked) and INTERRUPT.
#include <fcntl.h>

#include "fuse/server_impl.hpp"

namespace vfsdax::fs {

namespace {

Lock to_lock(const fuse_file_lock& lk) {
    return Lock{lk.start, lk.end, lk.type, lk.pid};
}

}  // namespace

Outcome FuseServer::Impl::getlk(Call& c) {
    auto in = c.body.take<fuse_lk_in>();
    if (!in) return c.reply.error(in.error());
    if (c.reply.room() < sizeof(fuse_lk_out)) return c.reply.error(EINVAL);
    auto lock = fs_.getlk(c.ctx, c.in.nodeid, in->fh, in->owner, to_lock(in->lk));
    if (!lock) return c.reply.error(lock.error());
    fuse_lk_out out{};
    out.lk.start = lock->start;
    out.lk.end = lock->end;
    out.lk.type = lock->type;
    out.lk.pid = lock->pid;
    return c.reply.reply(out);
}

Outcome FuseServer::Impl::setlk(Call& c, bool wait) {
    auto in = c.body.take<fuse_lk_in>();
    if (!in) return c.reply.error(in.error());
    const Lock lock = to_lock(in->lk);
    const bool flock = (in->lk_flags & FUSE_LK_FLOCK) != 0;
    auto r = fs_.setlk(c.ctx, c.in.nodeid, in->fh, in->owner, lock, flock);
    // Not only an unlock releases: a read lock over the owner's write lock, or a lock over
    // part of its range, lets others in too.
    if (r) lock_waiter_.nudge();
    if (r || r.error() != EAGAIN || !wait) return c.reply.finish(r ? 0 : r.error());

    // Blocked: park the request; the reply header room stays claimed in the chain.
    std::shared_ptr<FuseRequest> request(std::move(c.request));
    auto attempt = [this, ctx = c.ctx, node = c.in.nodeid, fh = in->fh, owner = in->owner, lock,
                    flock] {
        auto again = fs_.setlk(ctx, node, fh, owner, lock, flock);
        return again ? 0 : again.error();
    };
    auto finish = [request, reply = c.reply](int error) mutable {
        request->complete(reply.finish(error));
    };
    lock_waiter_.park(c.in.unique, std::move(attempt), std::move(finish));
    return std::nullopt;
}

Outcome FuseServer::Impl::interrupt(Call& c) {
    // Only a parked SETLKW can be interrupted; every other request finishes on its own soon.
    if (auto in = c.body.take<fuse_interrupt_in>()) lock_waiter_.cancel(in->unique);
    return 0;
}

}  // namespace vfsdax::fs
