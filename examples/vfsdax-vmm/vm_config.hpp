// SPDX-License-Identifier: Apache-2.0
// VmConfig: what vfsdax-vmm is asked to run, parsed and checked from the command line or JSON.
#pragma once

#include <cstdint>
#include <expected>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vfsdax::vmm_cli {

enum class CacheMode { Auto, Always, Never };
// Which files tell a guest mounted with dax=inode (Linux's default) to use the DAX window.
enum class InodeDaxMode { None, All, MinSize };
enum class LogLevel { Error, Warn, Info, Debug };
// Whether guests see the TSC-deadline timer; auto: on, except under QEMU TCG (see vmm/cpuid.hpp).
enum class TscDeadline { Auto, On, Off };
// Seccomp filters per thread class: on (a syscall outside the list kills the VMM), log (it is
// allowed and logged by the kernel), off (capabilities per thread only).
enum class Seccomp { On, Log, Off };

struct FsShare {
    std::string tag;
    std::string dir;
    uint64_t dax_window = 0;  // bytes; 0: no DAX window
    CacheMode cache = CacheMode::Auto;
    uint16_t queues = 1;  // request queues (the hiprio queue comes on top)
    bool packed = false;
    bool readonly = false;
    bool xattr = false;
    bool xattr_capability = false;  // the guest may set security.capability (needs xattr)
    bool xattr_trusted = false;     // the guest may set trusted.* (needs xattr)
    bool setid = false;             // keep set-user-ID/set-group-ID bits the guest asks for
    bool devices = true;            // create device nodes where the VMM may (whiteouts: always)
    InodeDaxMode inode_dax = InodeDaxMode::None;  // anything else needs a dax_window
    uint64_t inode_dax_min_size = 0;              // for InodeDaxMode::MinSize
};

struct VmConfig {
    std::string kernel;
    std::string initrd;  // empty: none
    // reboot=k: Linux resets through the i8042, which ends the VMM; panic=-1 turns a panic
    // (init exiting) into that same reset instead of a hang.
    std::string cmdline = "console=ttyS0 reboot=k panic=-1";
    unsigned cpus = 1;
    uint64_t memory = uint64_t{512} << 20;
    std::vector<FsShare> fs;
    LogLevel log_level = LogLevel::Info;
    TscDeadline tsc_deadline = TscDeadline::Auto;
    Seccomp seccomp = Seccomp::On;
};

inline constexpr unsigned kMaxCpus = 64;
inline constexpr uint64_t kMinMemory = uint64_t{64} << 20;
inline constexpr uint64_t kMaxMemory = uint64_t{1} << 40;
inline constexpr std::size_t kMaxTagBytes = 36;  // virtio_fs_config.tag
inline constexpr uint64_t kDaxAlignment = uint64_t{2} << 20;
inline constexpr uint64_t kMaxDaxWindow = uint64_t{64} << 30;
inline constexpr unsigned kMaxQueues = 64;

// "512M", "1G", "4096" (bytes), binary suffixes K, M, G, T. The error says why, not where.
std::expected<uint64_t, std::string> parse_size(std::string_view text);

// One --fs value:
// "tag=T,dir=D[,dax-window=1G][,cache=auto][,queues=N][,packed=on|off][,readonly][,xattr=on|off]
// [,xattr-capability=on|off][,xattr-trusted=on|off][,setid=on|off][,devices=on|off]
// [,inode-dax=all|none|SIZE]".
std::expected<FsShare, std::string> parse_fs_option(std::string_view text);

// Merges a JSON document into `config`; `source` prefixes every error (the file name).
std::expected<void, std::string> apply_json(const nlohmann::json& doc, std::string_view source,
                                            VmConfig& config);

// Checks what no single field can: required fields, unique tags, directories that exist.
std::expected<void, std::string> validate(const VmConfig& config);

struct CommandLine {
    bool help = false;
    // --check-kvm: only say whether /dev/kvm can run stock guest kernels.
    bool check_kvm = false;
    VmConfig config;
};

// argv without the program name. --config is applied first wherever it appears; the other
// flags then override its values and --fs adds shares to its list.
std::expected<CommandLine, std::string> parse_command_line(std::span<const std::string_view> args);

std::string help_text(std::string_view program);

}  // namespace vfsdax::vmm_cli
