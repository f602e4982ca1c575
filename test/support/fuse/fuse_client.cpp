// SPDX-License-Identifier: Apache-2.0
// FuseClient: FUSE request encoding, reply and dirent decoding, and the split-queue session.
#include "fuse/fuse_client.hpp"

#include <stdexcept>

namespace vfsdax::test {

Bytes cstr(std::string_view s) {
    Bytes out = raw_bytes(s);
    out.push_back(std::byte{0});
    return out;
}

Bytes raw_bytes(std::string_view s) {
    Bytes out(s.size());
    if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());  // data() may be null
    return out;
}

Bytes fuse_request(uint32_t opcode, uint64_t unique, uint64_t nodeid,
                   std::initializer_list<Bytes> args, Caller caller) {
    fuse_in_header in{};
    std::size_t len = sizeof(in);
    for (const Bytes& a : args) len += a.size();
    in.len = static_cast<uint32_t>(len);
    in.opcode = opcode;
    in.unique = unique;
    in.nodeid = nodeid;
    in.uid = caller.uid;
    in.gid = caller.gid;
    in.pid = caller.pid;
    Bytes out = bytes_of(in);
    for (const Bytes& a : args) out.insert(out.end(), a.begin(), a.end());
    return out;
}

void set_request_len(Bytes& request, uint32_t len) {
    if (request.size() < sizeof(fuse_in_header)) throw std::runtime_error("no header to patch");
    std::memcpy(request.data() + offsetof(fuse_in_header, len), &len, sizeof(len));
}

FuseReply parse_reply(std::span<const std::byte> written, uint64_t unique) {
    FuseReply reply;
    if (written.size() < sizeof(fuse_out_header)) throw std::runtime_error("reply too short");
    std::memcpy(&reply.header, written.data(), sizeof(fuse_out_header));
    if (reply.header.len != written.size()) throw std::runtime_error("out.len != used length");
    if (reply.header.unique != unique) throw std::runtime_error("reply for another request");
    if (reply.header.error > 0 || reply.header.error < -4095) {
        throw std::runtime_error("error out of range");
    }
    if (reply.header.error != 0 && written.size() != sizeof(fuse_out_header)) {
        throw std::runtime_error("error reply with payload");
    }
    reply.payload.assign(written.begin() + sizeof(fuse_out_header), written.end());
    return reply;
}

std::vector<Dirent> parse_dirents(const Bytes& payload, bool plus) {
    std::vector<Dirent> out;
    std::size_t at = 0;
    const std::size_t head = plus ? sizeof(fuse_direntplus) : sizeof(fuse_dirent);
    while (at < payload.size()) {
        if (payload.size() - at < head) throw std::runtime_error("dirent header overruns");
        Dirent d;
        fuse_dirent dirent{};
        if (plus) {
            fuse_direntplus p{};
            std::memcpy(&p, payload.data() + at, sizeof(p));
            d.entry = p.entry_out;
            dirent = p.dirent;
        } else {
            std::memcpy(&dirent, payload.data() + at, sizeof(dirent));
        }
        const std::size_t size = FUSE_DIRENT_ALIGN(head + dirent.namelen);
        if (dirent.namelen == 0 || size > payload.size() - at) {
            throw std::runtime_error("dirent overruns");
        }
        d.ino = dirent.ino;
        d.off = dirent.off;
        d.type = dirent.type;
        d.name.assign(reinterpret_cast<const char*>(payload.data() + at + head), dirent.namelen);
        out.push_back(std::move(d));
        at += size;
    }
    return out;
}

FuseQueueClient::FuseQueueClient(TestMemory& memory, uint16_t queue_size, uint64_t features,
                                 uint16_t slots, uint32_t request_capacity, uint32_t reply_capacity)
    : driver_(memory, queue_size, features), memory_(memory), slot_of_head_(queue_size, -1) {
    for (uint16_t i = 0; i < slots; ++i) {
        slots_.push_back({driver_.alloc_buffer(request_capacity),
                          driver_.alloc_buffer(reply_capacity), reply_capacity});
        free_slots_.push_back(static_cast<uint16_t>(slots - 1 - i));
    }
}

uint16_t FuseQueueClient::add(const Bytes& request, uint32_t reply_size) {
    if (free_slots_.empty()) throw std::runtime_error("no free request slot");
    const uint16_t s = free_slots_.back();
    Slot& slot = slots_[s];
    if (request.size() > slot.request.len) throw std::runtime_error("request too large");
    const uint32_t reply_len = reply_size ? reply_size : slot.reply.len;
    if (reply_len > slot.reply.len) throw std::runtime_error("reply too large");
    std::memcpy(memory_.raw(slot.request.addr, request.size()), request.data(), request.size());
    const DriverBuffer readable{slot.request.addr, static_cast<uint32_t>(request.size())};
    const DriverBuffer writable{slot.reply.addr, reply_len};
    auto head = driver_.add({&readable, 1}, {&writable, 1});
    if (!head) throw std::runtime_error("ring full");
    free_slots_.pop_back();
    slot_of_head_[*head] = s;
    ++in_flight_;
    return *head;
}

bool FuseQueueClient::publish() {
    driver_.publish();
    return driver_.kick_needed();
}

std::optional<FuseQueueClient::Completion> FuseQueueClient::poll() {
    auto used = driver_.get_used();
    if (!used) return std::nullopt;
    const int s = slot_of_head_.at(used->id);
    if (s < 0) throw std::runtime_error("used head not in flight");
    slot_of_head_[used->id] = -1;
    free_slots_.push_back(static_cast<uint16_t>(s));
    --in_flight_;
    Completion c;
    c.head = static_cast<uint16_t>(used->id);
    c.written = {memory_.raw(slots_[s].reply.addr, used->len ? used->len : 1), used->len};
    return c;
}

}  // namespace vfsdax::test
