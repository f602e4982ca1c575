// SPDX-License-Identifier: Apache-2.0
// Start-of-process hardening for the passthrough server: capability set and fd limit.
#include <cap-ng.h>
#include <linux/capability.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "vfsdax/fs/passthrough.hpp"

namespace vfsdax::fs {

std::vector<int> passthrough_capabilities() {
    return {
        CAP_CHOWN,            // SETATTR uid/gid
        CAP_DAC_OVERRIDE,     // the guest kernel already checked permissions against its view
        CAP_DAC_READ_SEARCH,  // open_by_handle_at, for inodes held as file handles
        CAP_FOWNER,           // chmod/utimes/xattrs on files the server does not own
        CAP_FSETID,           // keep set-group-ID bits the guest asked for
        CAP_MKNOD,            // device nodes the guest creates (PassthroughOptions::device_nodes)
        CAP_SETGID,           // per-thread credentials while creating files
        CAP_SETUID,
    };
}

std::expected<void, int> drop_capabilities(std::span<const int> keep_also) {
    capng_clear(CAPNG_SELECT_BOTH);
    std::vector<int> keep = passthrough_capabilities();
    keep.insert(keep.end(), keep_also.begin(), keep_also.end());
    for (int cap : keep) {
        if (capng_update(
                CAPNG_ADD,
                static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET),
                static_cast<unsigned>(cap)) != 0) {
            return std::unexpected(EINVAL);
        }
    }
    // Bounding set too, so an exec'd helper cannot regain what was dropped.
    if (capng_apply(CAPNG_SELECT_BOTH) != 0) return std::unexpected(EPERM);
    return {};
}

namespace {

// The kernel's ceiling for RLIMIT_NOFILE; raising the hard limit beyond it fails.
rlim_t nr_open() {
    rlim_t value = 0;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
        unsigned long long v = 0;
        if (std::fscanf(f, "%llu", &v) == 1) value = static_cast<rlim_t>(v);
        std::fclose(f);
    }
    return value;
}

}  // namespace

std::expected<uint64_t, int> raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::unexpected(errno);
    // With CAP_SYS_RESOURCE the hard limit itself can go up to the kernel's ceiling.
    const rlim_t ceiling = nr_open();
    if (ceiling > lim.rlim_max) {
        rlimit wanted{ceiling, ceiling};
        if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) return ceiling;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return std::unexpected(errno);
    }
    return lim.rlim_cur;
}

}  // namespace vfsdax::fs
