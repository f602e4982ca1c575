// SPDX-License-Identifier: Apache-2.0
// Validation of FsDeviceOptions: the tag's length and encoding, queue counts and sizes.
#include "device/options_check.hpp"

#include <cstdint>

#include "vfsdax/virtio/spec.hpp"

namespace vfsdax::fs::device {

namespace {
constexpr std::size_t kTagBytes = sizeof(virtio_fs_config::tag);
// Queue indices are 16 bits; this leaves ample room below that for any transport.
constexpr uint32_t kMaxRequestQueues = 1024;
}  // namespace

bool is_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t extra = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (extra >= s.size() - i) return false;
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static constexpr uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

std::expected<void, std::string> check_options(const FsDeviceOptions& options) {
    if (options.tag.empty() || options.tag.size() > kTagBytes) {
        return std::unexpected(std::string("virtio-fs: tag must be 1 to 36 bytes"));
    }
    if (options.tag.find('\0') != std::string::npos || !is_utf8(options.tag)) {
        return std::unexpected(std::string("virtio-fs: tag must be UTF-8 without NUL"));
    }
    if (options.num_request_queues == 0 || options.num_request_queues > kMaxRequestQueues) {
        return std::unexpected(std::string("virtio-fs: 1 to 1024 request queues"));
    }
    if (options.queue_size == 0 || options.queue_size > virtio::kMaxQueueSize) {
        return std::unexpected(std::string("virtio-fs: queue size must be 1 to 32768"));
    }
    if (options.threads == 0) {
        return std::unexpected(std::string("virtio-fs: at least one worker thread"));
    }
    return {};
}

}  // namespace vfsdax::fs::device
