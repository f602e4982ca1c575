// SPDX-License-Identifier: Apache-2.0
// Building and attaching one virtio-fs share.
#include "fs_share.hpp"

#include <fmt/format.h>
#include <linux/virtio_fs.h>

#include <cstring>

#include "log.hpp"
#include "vfsdax/fs/passthrough.hpp"

namespace vfsdax::vmm_cli {
namespace {

fs::CachePolicy cache_policy(CacheMode mode) {
    switch (mode) {
        case CacheMode::Always:
            return fs::CachePolicy::Always;
        case CacheMode::Never:
            return fs::CachePolicy::Never;
        case CacheMode::Auto:
            break;
    }
    return fs::CachePolicy::Auto;
}

fs::InodeDax inode_dax(InodeDaxMode mode) {
    switch (mode) {
        case InodeDaxMode::All:
            return fs::InodeDax::All;
        case InodeDaxMode::MinSize:
            return fs::InodeDax::MinSize;
        case InodeDaxMode::None:
            break;
    }
    return fs::InodeDax::None;
}

}  // namespace

std::expected<std::unique_ptr<AttachedShare>, std::string> attach_share(
    vmm::Machine& machine, const FsShare& share, std::size_t fd_budget,
    vmm::ThreadLauncher& launcher) {
    auto fail = [&](std::string_view field, const std::string& why) {
        return std::unexpected(fmt::format("--fs tag={}: {}: {}", share.tag, field, why));
    };
    auto out = std::make_unique<AttachedShare>();
    auto backend = fs::make_passthrough(fs::PassthroughOptions{.root = share.dir,
                                                               .fd_budget = fd_budget,
                                                               .allow_setid = share.setid,
                                                               .device_nodes = share.devices});
    if (!backend)
        return fail("dir", fmt::format("{}: {}", share.dir, std::strerror(backend.error())));
    out->backend = std::move(*backend);

    // The device declares the window as its shared memory region 0; the PCI function backs it.
    std::vector<vmm::SharedMemoryBacking> backings;
    if (share.dax_window) {
        auto mapper = fs::DaxMapper::create(fs::DaxMapper::Config{.window_size = share.dax_window});
        if (!mapper) return fail("dax-window", std::strerror(mapper.error()));
        out->mapper = std::move(*mapper);
        backings.push_back({VIRTIO_FS_SHMCAP_ID_CACHE, out->mapper->window(), share.dax_window});
        machine.add_fault_repair(
            [mapper = out->mapper.get(), tag = share.tag](
                vmm::RepairTrigger trigger) -> std::expected<std::size_t, std::string> {
                auto repaired =
                    mapper->repair_truncated(trigger == vmm::RepairTrigger::Scan
                                                 ? fs::DaxMapper::TruncationScope::CutSinceMapped
                                                 : fs::DaxMapper::TruncationScope::CutOrAnyPastEnd);
                if (!repaired) {
                    return std::unexpected(fmt::format("virtio-fs \"{}\": DAX repair: {}", tag,
                                                       std::strerror(repaired.error())));
                }
                if (*repaired > 0) {
                    vmm::log(vmm::LogLevel::Info,
                             "virtio-fs \"{}\": files the guest has mapped shrank: {} DAX window "
                             "range(s) past their file's end read as zeros until it grows again",
                             tag, *repaired);
                }
                return *repaired;
            });
    }

    fs::FsDeviceOptions options;
    options.tag = share.tag;
    options.num_request_queues = share.queues;
    options.fuse.cache = cache_policy(share.cache);
    options.fuse.read_only = share.readonly;
    options.fuse.xattr = share.xattr;
    options.fuse.xattr_capability = share.xattr_capability;
    options.fuse.xattr_trusted = share.xattr_trusted;
    options.fuse.inode_dax = inode_dax(share.inode_dax);
    options.fuse.inode_dax_min_size = share.inode_dax_min_size;
    options.packed_ring = share.packed;
    options.start_thread = [&launcher](std::function<void()> body) {
        return launcher.launch(std::move(body));
    };
    auto device = fs::FsDevice::create(options, *out->backend, out->mapper.get());
    if (!device) return fail("device", device.error());
    out->device = std::move(*device);

    auto pci = vmm::VirtioPciDevice::attach(machine, *out->device, std::move(backings));
    if (!pci) return fail("pci", pci.error());
    out->pci = std::move(*pci);
    return out;
}

}  // namespace vfsdax::vmm_cli
