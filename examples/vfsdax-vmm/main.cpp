// SPDX-License-Identifier: Apache-2.0
// vfsdax-vmm: boots Linux (bzImage or vmlinux) under KVM with virtio-fs shares.
#include <fmt/format.h>
#include <linux/capability.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "fs_share.hpp"
#include "kvm_check.hpp"
#include "log.hpp"
#include "machine.hpp"
#include "sandbox.hpp"
#include "vfsdax/fs/dax_fault_handler.hpp"
#include "vfsdax/fs/passthrough.hpp"
#include "vm_config.hpp"

namespace {

constexpr int kUsageError = 2;
constexpr int kStartError = 1;

vfsdax::vmm::TscDeadline machine_tsc_deadline(vfsdax::vmm_cli::TscDeadline mode) {
    switch (mode) {
        case vfsdax::vmm_cli::TscDeadline::On:
            return vfsdax::vmm::TscDeadline::On;
        case vfsdax::vmm_cli::TscDeadline::Off:
            return vfsdax::vmm::TscDeadline::Off;
        case vfsdax::vmm_cli::TscDeadline::Auto:
            break;
    }
    return vfsdax::vmm::TscDeadline::Auto;
}

vfsdax::vmm::SeccompMode machine_seccomp(vfsdax::vmm_cli::Seccomp mode) {
    switch (mode) {
        case vfsdax::vmm_cli::Seccomp::Log:
            return vfsdax::vmm::SeccompMode::Log;
        case vfsdax::vmm_cli::Seccomp::Off:
            return vfsdax::vmm::SeccompMode::Off;
        case vfsdax::vmm_cli::Seccomp::On:
            break;
    }
    return vfsdax::vmm::SeccompMode::Kill;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace vfsdax;
    const std::vector<std::string_view> args(argv + 1, argv + argc);
    auto cli = vmm_cli::parse_command_line(args);
    if (!cli) {
        fmt::print(stderr, "vfsdax-vmm: {}\n", cli.error());
        return kUsageError;
    }
    if (cli->help) {
        fmt::print("{}", vmm_cli::help_text("vfsdax-vmm"));
        return 0;
    }
    if (cli->check_kvm) {
        // One line, for users and for the e2e rig's choice of mode. The cheap check first: a
        // KVM it rejects could make the probe spin until its time limit.
        std::string why;
        if (auto obstacle = vmm::stock_guest_obstacle()) {
            why = *obstacle;
        } else if (auto probe = vmm::probe_stock_guest(); !probe) {
            why = probe.error();
        } else {
            fmt::print(
                "vfsdax-vmm: /dev/kvm runs stock guests (a probe guest went from real mode to "
                "long mode with paging, ran privileged instructions and I/O in {:.1f} ms)\n",
                static_cast<double>(probe->elapsed.count()) / 1000.0);
            return 0;
        }
        fmt::print("vfsdax-vmm: /dev/kvm cannot run stock guests: {}\n", why);
        return kStartError;
    }
    const vmm_cli::VmConfig& config = cli->config;
    if (auto r = vmm_cli::validate(config); !r) {
        fmt::print(stderr, "vfsdax-vmm: {}\n", r.error());
        return kUsageError;
    }
    vmm::g_log_level = static_cast<vmm::LogLevel>(config.log_level);
    // A KVM that cannot run a stock kernel takes one in for tens of seconds and then fails
    // with an internal error: say so at once instead.
    if (auto obstacle = vmm::stock_guest_obstacle()) {
        vmm::log(vmm::LogLevel::Error,
                 "/dev/kvm cannot run a stock Linux kernel: {} (`vfsdax-vmm --check-kvm` checks)",
                 *obstacle);
        return kStartError;
    }

    if (!config.fs.empty()) {
        // Each inode the guest knows holds a host fd: the default soft limit (1024) runs out
        // on a guest listing a large directory. Before the capabilities go: CAP_SYS_RESOURCE
        // lets the hard limit rise too.
        (void)fs::raise_fd_limit();
        if (auto r = fs::install_dax_fault_handler(); !r) {
            vmm::log(vmm::LogLevel::Error, "DAX fault handler: {}", std::strerror(r.error()));
            return kStartError;
        }
    }
    // Before any thread starts (capabilities are per thread; new threads inherit them). An
    // unprivileged VMM has nothing to drop and the kernel refuses to touch the bounding set.
    // A share that lets the guest set trusted.* names keeps CAP_SYS_ADMIN: the host checks it
    // for them (overlayfs keeps its metadata there); no other share needs it.
    std::vector<int> keep_also;
    if (std::ranges::any_of(config.fs, [](const vmm_cli::FsShare& s) { return s.xattr_trusted; })) {
        keep_also.push_back(CAP_SYS_ADMIN);
    }
    // security.capability is checked against CAP_SETFCAP; only shares that allow it need it.
    if (std::ranges::any_of(config.fs,
                            [](const vmm_cli::FsShare& s) { return s.xattr_capability; })) {
        keep_also.push_back(CAP_SETFCAP);
    }
    vmm::SandboxPolicy sandbox{machine_seccomp(config.seccomp), fs::passthrough_capabilities()};
    sandbox.file_server_capabilities.insert(sandbox.file_server_capabilities.end(),
                                            keep_also.begin(), keep_also.end());
    // CAP_SETPCAP only until each thread has confined itself, which takes its bounding set
    // down to its class's set with it.
    keep_also.push_back(CAP_SETPCAP);
    if (auto r = fs::drop_capabilities(keep_also); !r) {
        vmm::log(vmm::LogLevel::Debug, "capabilities not dropped: {}", std::strerror(r.error()));
    }
    auto machine = vmm::Machine::create(vmm::MachineOptions{
        config.kernel, config.initrd, config.cmdline, config.cpus, config.memory, 0, 1,
        machine_tsc_deadline(config.tsc_deadline), sandbox});
    if (!machine) {
        vmm::log(vmm::LogLevel::Error, "{}", machine.error());
        return kStartError;
    }
    // After Machine::create, whose signal mask (SIGINT and SIGTERM blocked, for its signalfd)
    // the launcher and the workers it starts inherit.
    std::unique_ptr<vmm::ThreadLauncher> launcher;
    if (!config.fs.empty()) {
        auto started = vmm::ThreadLauncher::start(sandbox);
        if (!started) {
            vmm::log(vmm::LogLevel::Error, "{}", started.error());
            return kStartError;
        }
        launcher = std::move(*started);
    }
    // Each share's descriptor budget: the soft limit less 256 for the VMM's own (KVM, vCPUs,
    // eventfds, irqfds, logs) and less one per 2 MiB of every DAX window (a mapped range holds
    // its file open), split evenly, so that no guest reaches the VMM's descriptors.
    std::size_t fd_budget = 0;
    if (rlimit lim{}; !config.fs.empty() && ::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        std::size_t reserve = 256;
        for (const vmm_cli::FsShare& share : config.fs) reserve += share.dax_window >> 21;
        if (lim.rlim_cur > reserve) fd_budget = (lim.rlim_cur - reserve) / config.fs.size();
    }
    std::vector<std::unique_ptr<vmm_cli::AttachedShare>> shares;
    for (const vmm_cli::FsShare& share : config.fs) {
        auto attached = vmm_cli::attach_share(**machine, share, fd_budget, *launcher);
        if (!attached) {
            vmm::log(vmm::LogLevel::Error, "{}", attached.error());
            return kStartError;
        }
        vmm::log(vmm::LogLevel::Info, "virtio-fs \"{}\" ({}) on PCI 00:{:02x}.0", share.tag,
                 share.dir, (*attached)->pci->slot());
        shares.push_back(std::move(*attached));
    }
    const int status = (*machine)->run();
    // Stopped from outside (a timeout, a user giving up) or by an error: the guest may have
    // been stuck, and each device's state tells which side waited for the other.
    const vmm::LogLevel state_level =
        status != 0 || (*machine)->stopped_by_signal() ? vmm::LogLevel::Info : vmm::LogLevel::Debug;
    for (const std::string& line : (*machine)->describe_vcpus()) vmm::log(state_level, "{}", line);
    for (std::size_t i = 0; i < shares.size(); ++i) {
        for (const std::string& line : shares[i]->pci->describe())
            vmm::log(state_level, "virtio-fs \"{}\": {}", config.fs[i].tag, line);
        if (!shares[i]->mapper) continue;
        const fs::DaxStats dax = shares[i]->mapper->stats();
        vmm::log(vmm::LogLevel::Info,
                 "virtio-fs \"{}\" DAX: {} setups, {} removals, {} repairs, {} restores, {} "
                 "faulted pages, {} mappings live ({} bytes)",
                 config.fs[i].tag, dax.setups, dax.removals, dax.repairs, dax.restores,
                 dax.faulted_pages, dax.mappings_live, dax.bytes_mapped);
    }
    return status;
}
