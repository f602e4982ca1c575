// SPDX-License-Identifier: Apache-2.0
// Thread names: fs:TAG:ROLE cut to fit comm, and naming the calling thread.
#include "util/thread_name.hpp"

#include <pthread.h>

namespace vfsdax::fs {

std::string thread_name(std::string_view tag, std::string_view role) {
    constexpr std::string_view kPrefix = "fs:";
    role = role.substr(0, kThreadNameMax - kPrefix.size());
    const std::size_t room = kThreadNameMax - kPrefix.size() - role.size();
    // The tag needs its separator too; one byte of tag is still worth showing.
    if (tag.empty() || room < 2) return std::string(kPrefix) + std::string(role);
    std::size_t keep = std::min(tag.size(), room - 1);
    // Back off continuation bytes (10xxxxxx) so the cut falls between characters.
    while (keep > 0 && keep < tag.size() &&
           (static_cast<unsigned char>(tag[keep]) & 0xc0) == 0x80) {
        --keep;
    }
    if (keep == 0) return std::string(kPrefix) + std::string(role);
    return std::string(kPrefix) + std::string(tag.substr(0, keep)) + ":" + std::string(role);
}

void name_this_thread(const std::string& name) {
    (void)pthread_setname_np(pthread_self(), name.substr(0, kThreadNameMax).c_str());
}

}  // namespace vfsdax::fs
