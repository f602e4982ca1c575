// SPDX-License-Identifier: Apache-2.0
// FsShare wiring: one --fs share as a passthrough backend, a DAX mapper, an FsDevice and its
// place on the machine's PCI bus.
#pragma once

#include <expected>
#include <memory>
#include <string>

#include "machine.hpp"
#include "sandbox.hpp"
#include "vfsdax/fs/dax_mapper.hpp"
#include "vfsdax/fs/file_system.hpp"
#include "vfsdax/fs/fs_device.hpp"
#include "virtio_pci_device.hpp"
#include "vm_config.hpp"

namespace vfsdax::vmm_cli {

// Members in construction order, so destruction stops the PCI function first and the backend
// last.
struct AttachedShare {
    std::unique_ptr<fs::FileSystem> backend;
    std::unique_ptr<fs::DaxMapper> mapper;
    std::unique_ptr<fs::FsDevice> device;
    std::unique_ptr<vmm::VirtioPciDevice> pci;
};

// Errors name the share (--fs tag=T) and the field at fault. `fd_budget`: the descriptors the
// share may hold for its guest (PassthroughOptions::fd_budget; 0: the library's default).
// `launcher` starts the device's workers, which so become file-server threads.
std::expected<std::unique_ptr<AttachedShare>, std::string> attach_share(
    vmm::Machine& machine, const FsShare& share, std::size_t fd_budget,
    vmm::ThreadLauncher& launcher);

}  // namespace vfsdax::vmm_cli
