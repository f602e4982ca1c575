// SPDX-License-Identifier: Apache-2.0
// Parsing and checking of vfsdax-vmm's command line and JSON config, one message per bad field.
#include "vm_config.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace vfsdax::vmm_cli {
namespace {

constexpr std::string_view kNotAVmField =
    "is not a field (kernel, initrd, cmdline, cpus, memory, log-level, tsc-deadline, seccomp, "
    "fs)";

std::unexpected<std::string> fail(std::string message) {
    return std::unexpected(std::move(message));
}

template <typename Int>
std::expected<Int, std::string> parse_uint(std::string_view text) {
    Int value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
        return fail(fmt::format("\"{}\" is not a number", text));
    if (ec == std::errc::result_out_of_range) return fail(fmt::format("{} is too large", text));
    return value;
}

std::expected<unsigned, std::string> parse_cpus(std::string_view text) {
    auto n = parse_uint<unsigned>(text);
    if (!n) return n;
    if (*n < 1 || *n > kMaxCpus) return fail(fmt::format("{} is not in 1..{}", *n, kMaxCpus));
    return n;
}

std::expected<uint64_t, std::string> parse_memory(std::string_view text) {
    auto size = parse_size(text);
    if (!size) return size;
    if (*size < kMinMemory || *size > kMaxMemory)
        return fail(fmt::format("{} is not between 64M and 1T", text));
    if (*size % 4096 != 0) return fail(fmt::format("{} is not a multiple of 4 KiB", text));
    return size;
}

std::expected<LogLevel, std::string> parse_log_level(std::string_view text) {
    if (text == "error") return LogLevel::Error;
    if (text == "warn") return LogLevel::Warn;
    if (text == "info") return LogLevel::Info;
    if (text == "debug") return LogLevel::Debug;
    return fail(fmt::format("\"{}\" is not one of error, warn, info, debug", text));
}

std::expected<TscDeadline, std::string> parse_tsc_deadline(std::string_view text) {
    if (text == "auto") return TscDeadline::Auto;
    if (text == "on") return TscDeadline::On;
    if (text == "off") return TscDeadline::Off;
    return fail(fmt::format("\"{}\" is not one of auto, on, off", text));
}

std::expected<Seccomp, std::string> parse_seccomp(std::string_view text) {
    if (text == "on") return Seccomp::On;
    if (text == "log") return Seccomp::Log;
    if (text == "off") return Seccomp::Off;
    return fail(fmt::format("\"{}\" is not one of on, log, off", text));
}

std::expected<bool, std::string> parse_on_off(std::string_view text) {
    if (text == "on") return true;
    if (text == "off") return false;
    return fail(fmt::format("\"{}\" is not on or off", text));
}

std::expected<void, std::string> set_tag(FsShare& share, std::string_view text) {
    if (text.empty()) return fail("is empty");
    if (text.size() > kMaxTagBytes)
        return fail(fmt::format("\"{}\" is longer than {} bytes", text, kMaxTagBytes));
    share.tag = text;
    return {};
}

std::expected<void, std::string> set_dax_window(FsShare& share, std::string_view text) {
    auto size = parse_size(text);
    if (!size) return std::unexpected(size.error());
    if (*size % kDaxAlignment != 0) return fail(fmt::format("{} is not a multiple of 2 MiB", text));
    if (*size > kMaxDaxWindow) return fail(fmt::format("{} is larger than 64G", text));
    share.dax_window = *size;
    return {};
}

std::expected<void, std::string> set_cache(FsShare& share, std::string_view text) {
    if (text == "auto") {
        share.cache = CacheMode::Auto;
    } else if (text == "always") {
        share.cache = CacheMode::Always;
    } else if (text == "never") {
        share.cache = CacheMode::Never;
    } else {
        return fail(fmt::format("\"{}\" is not one of auto, always, never", text));
    }
    return {};
}

std::expected<void, std::string> set_inode_dax(FsShare& share, std::string_view text) {
    if (text == "none" || text == "all") {
        share.inode_dax = text == "all" ? InodeDaxMode::All : InodeDaxMode::None;
        return {};
    }
    auto size = parse_size(text);
    if (!size) {
        return fail(fmt::format("\"{}\" is not all, none or a file size (such as 1M)", text));
    }
    share.inode_dax = InodeDaxMode::MinSize;
    share.inode_dax_min_size = *size;
    return {};
}

std::expected<void, std::string> set_queues(FsShare& share, std::string_view text) {
    auto n = parse_uint<unsigned>(text);
    if (!n) return std::unexpected(n.error());
    if (*n < 1 || *n > kMaxQueues) return fail(fmt::format("{} is not in 1..{}", *n, kMaxQueues));
    share.queues = static_cast<uint16_t>(*n);
    return {};
}

constexpr std::string_view kNotAField =
    "is not a field (tag, dir, dax-window, cache, queues, packed, readonly, xattr, "
    "xattr-capability, xattr-trusted, setid, devices, inode-dax)";

// The on/off fields (readonly too, though on the command line its value is optional).
bool* switch_field(FsShare& share, std::string_view key) {
    if (key == "packed") return &share.packed;
    if (key == "readonly") return &share.readonly;
    if (key == "xattr") return &share.xattr;
    if (key == "xattr-capability") return &share.xattr_capability;
    if (key == "xattr-trusted") return &share.xattr_trusted;
    if (key == "setid") return &share.setid;
    if (key == "devices") return &share.devices;
    return nullptr;
}

// The per-share fields whose value is text on the command line and in JSON alike.
std::expected<void, std::string> set_fs_text_field(FsShare& share, std::string_view key,
                                                   std::string_view value) {
    if (key == "tag") return set_tag(share, value);
    if (key == "dir") {
        if (value.empty()) return fail("is empty");
        share.dir = value;
        return {};
    }
    if (key == "dax-window") return set_dax_window(share, value);
    if (key == "cache") return set_cache(share, value);
    if (key == "queues") return set_queues(share, value);
    if (key == "inode-dax") return set_inode_dax(share, value);
    return fail(std::string(kNotAField));
}

// What a share needs whatever order its fields came in.
std::expected<void, std::string> check_share(const FsShare& share) {
    if (share.tag.empty()) return fail("tag: is missing");
    if (share.dir.empty()) return fail("dir: is missing");
    if (share.inode_dax != InodeDaxMode::None && share.dax_window == 0)
        return fail("inode-dax: needs a dax-window (files reach DAX only through one)");
    if (share.xattr_capability && !share.xattr)
        return fail("xattr-capability: needs xattr=on (without it no xattr reaches the share)");
    if (share.xattr_trusted && !share.xattr)
        return fail("xattr-trusted: needs xattr=on (without it no xattr reaches the share)");
    return {};
}

std::string json_text(const nlohmann::json& value) {
    if (value.is_string()) return value.get<std::string>();
    return value.dump();
}

std::expected<void, std::string> apply_json_fs(const nlohmann::json& item, FsShare& share) {
    if (!item.is_object()) return fail("is not an object");
    for (const auto& [key, value] : item.items()) {
        std::expected<void, std::string> r;
        if (bool* on = switch_field(share, key)) {
            if (!value.is_boolean())
                return fail(fmt::format("{}: {} is not true or false", key, value.dump()));
            *on = value.get<bool>();
        } else if (key == "queues" && !value.is_number_unsigned()) {
            return fail(fmt::format("queues: {} is not a positive integer", value.dump()));
        } else if ((key == "dax-window" || key == "inode-dax") && !value.is_string() &&
                   !value.is_number_unsigned()) {
            return fail(fmt::format("{}: {} is not a size{}", key, value.dump(),
                                    key == "inode-dax" ? ", \"all\" or \"none\"" : ""));
        } else if (key != "queues" && key != "dax-window" && key != "inode-dax" &&
                   !value.is_string()) {
            if (key == "tag" || key == "dir" || key == "cache")
                return fail(fmt::format("{}: {} is not a string", key, value.dump()));
            return fail(fmt::format("{}: {}", key, kNotAField));
        } else {
            r = set_fs_text_field(share, key, json_text(value));
        }
        if (!r) return fail(fmt::format("{}: {}", key, r.error()));
    }
    return check_share(share);
}

template <typename Parse>
auto field(std::string_view name, std::string_view value, Parse parse)
    -> std::expected<typename decltype(parse(value))::value_type, std::string> {
    auto r = parse(value);
    if (!r) return fail(fmt::format("{}: {}", name, r.error()));
    return r;
}

}  // namespace

std::expected<uint64_t, std::string> parse_size(std::string_view text) {
    if (text.empty()) return fail("is empty");
    unsigned shift = 0;
    switch (text.back()) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        case 'T':
        case 't':
            shift = 40;
            break;
        default:
            break;
    }
    std::string_view digits = shift ? text.substr(0, text.size() - 1) : text;
    auto n = parse_uint<uint64_t>(digits);
    if (!n) return fail(fmt::format("\"{}\" is not a size (a number with K, M, G or T)", text));
    if (shift && (*n >> (64 - shift)) != 0) return fail(fmt::format("{} is too large", text));
    return *n << shift;
}

std::expected<FsShare, std::string> parse_fs_option(std::string_view text) {
    FsShare share;
    std::set<std::string, std::less<>> seen;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        const std::size_t eq = item.find('=');
        const std::string_view key = item.substr(0, eq);
        if (key.empty()) return fail(fmt::format("\"{}\" has no field name", item));
        if (!seen.insert(std::string(key)).second)
            return fail(fmt::format("{}: is given twice", key));
        const bool has_value = eq != std::string_view::npos;
        const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view{};
        std::expected<void, std::string> r;
        if (key == "readonly") {
            if (has_value) {
                auto on = parse_on_off(value);
                if (!on) return fail(fmt::format("readonly: {}", on.error()));
                share.readonly = *on;
            } else {
                share.readonly = true;
            }
        } else if (bool* field = switch_field(share, key)) {
            auto on = parse_on_off(value);
            if (!on) return fail(fmt::format("{}: {}", key, on.error()));
            *field = *on;
        } else {
            if (!has_value && (key == "tag" || key == "dir" || key == "dax-window" ||
                               key == "cache" || key == "queues" || key == "inode-dax"))
                return fail(fmt::format("{}: has no value", key));
            r = set_fs_text_field(share, key, value);
        }
        if (!r) return fail(fmt::format("{}: {}", key, r.error()));
    }
    if (auto r = check_share(share); !r) return std::unexpected(r.error());
    return share;
}

std::expected<void, std::string> apply_json(const nlohmann::json& doc, std::string_view source,
                                            VmConfig& config) {
    auto bad = [&](std::string_view key, std::string_view why) {
        return fail(fmt::format("{}: {}: {}", source, key, why));
    };
    if (!doc.is_object()) return fail(fmt::format("{}: the document is not a JSON object", source));
    for (const auto& [key, value] : doc.items()) {
        if (key == "fs") {
            if (!value.is_array()) return bad(key, "is not an array");
            for (std::size_t i = 0; i < value.size(); ++i) {
                FsShare share;
                if (auto r = apply_json_fs(value[i], share); !r)
                    return bad(fmt::format("fs[{}]", i), r.error());
                config.fs.push_back(std::move(share));
            }
            continue;
        }
        if (key == "cpus" || key == "memory") {
            const bool number_ok = value.is_number_unsigned();
            if (!number_ok && !(key == "memory" && value.is_string()))
                return bad(key, fmt::format("{} is not a positive integer{}", value.dump(),
                                            key == "memory" ? " or a size string" : ""));
        } else if (!value.is_string()) {
            if (key != "kernel" && key != "initrd" && key != "cmdline" && key != "log-level" &&
                key != "tsc-deadline" && key != "seccomp")
                return bad(key, std::string(kNotAVmField));
            return bad(key, fmt::format("{} is not a string", value.dump()));
        }
        const std::string text = json_text(value);
        if (key == "kernel" || key == "initrd") {
            if (text.empty()) return bad(key, "is empty");
            (key == "kernel" ? config.kernel : config.initrd) = text;
        } else if (key == "cmdline") {
            config.cmdline = text;
        } else if (key == "cpus") {
            auto n = parse_cpus(text);
            if (!n) return bad(key, n.error());
            config.cpus = *n;
        } else if (key == "memory") {
            auto n = parse_memory(text);
            if (!n) return bad(key, n.error());
            config.memory = *n;
        } else if (key == "log-level") {
            auto n = parse_log_level(text);
            if (!n) return bad(key, n.error());
            config.log_level = *n;
        } else if (key == "tsc-deadline") {
            auto n = parse_tsc_deadline(text);
            if (!n) return bad(key, n.error());
            config.tsc_deadline = *n;
        } else if (key == "seccomp") {
            auto n = parse_seccomp(text);
            if (!n) return bad(key, n.error());
            config.seccomp = *n;
        } else {
            return bad(key, std::string(kNotAVmField));
        }
    }
    return {};
}

std::expected<void, std::string> validate(const VmConfig& config) {
    if (config.kernel.empty()) return fail("--kernel: is missing");
    std::set<std::string> tags;
    for (const FsShare& share : config.fs) {
        if (!tags.insert(share.tag).second)
            return fail(fmt::format("--fs tag={}: tag: is used by another share", share.tag));
        struct stat st;
        if (::stat(share.dir.c_str(), &st) != 0)
            return fail(fmt::format("--fs tag={}: dir: {}: {}", share.tag, share.dir,
                                    std::strerror(errno)));
        if (!S_ISDIR(st.st_mode))
            return fail(
                fmt::format("--fs tag={}: dir: {} is not a directory", share.tag, share.dir));
    }
    return {};
}

std::expected<CommandLine, std::string> parse_command_line(std::span<const std::string_view> args) {
    CommandLine out;
    // The config file first, so flags given on the command line win whatever their order.
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] != "--config") continue;
        if (i + 1 == args.size()) return fail("--config: has no value");
        const std::string path(args[i + 1]);
        std::ifstream in(path);
        if (!in) return fail(fmt::format("--config: {}: {}", path, std::strerror(errno)));
        nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) return fail(fmt::format("--config: {}: is not valid JSON", path));
        if (auto r = apply_json(doc, path, out.config); !r) return std::unexpected(r.error());
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view flag = args[i];
        if (flag == "--help" || flag == "-h") {
            out.help = true;
            return out;
        }
        if (flag == "--check-kvm") {
            if (args.size() != 1) return fail("--check-kvm: takes no other option");
            out.check_kvm = true;
            return out;
        }
        if (!flag.starts_with("--"))
            return fail(fmt::format("{}: is not an option (see --help)", flag));
        if (flag != "--kernel" && flag != "--initrd" && flag != "--cmdline" && flag != "--cpus" &&
            flag != "--memory" && flag != "--fs" && flag != "--config" && flag != "--log-level" &&
            flag != "--tsc-deadline" && flag != "--seccomp")
            return fail(fmt::format("{}: is not an option (see --help)", flag));
        if (i + 1 == args.size()) return fail(fmt::format("{}: has no value", flag));
        const std::string_view value = args[++i];
        if (flag == "--kernel" || flag == "--initrd") {
            if (value.empty()) return fail(fmt::format("{}: is empty", flag));
            (flag == "--kernel" ? out.config.kernel : out.config.initrd) = value;
        } else if (flag == "--cmdline") {
            out.config.cmdline = value;
        } else if (flag == "--cpus") {
            auto n = field(flag, value, parse_cpus);
            if (!n) return std::unexpected(n.error());
            out.config.cpus = *n;
        } else if (flag == "--memory") {
            auto n = field(flag, value, parse_memory);
            if (!n) return std::unexpected(n.error());
            out.config.memory = *n;
        } else if (flag == "--log-level") {
            auto n = field(flag, value, parse_log_level);
            if (!n) return std::unexpected(n.error());
            out.config.log_level = *n;
        } else if (flag == "--tsc-deadline") {
            auto n = field(flag, value, parse_tsc_deadline);
            if (!n) return std::unexpected(n.error());
            out.config.tsc_deadline = *n;
        } else if (flag == "--seccomp") {
            auto n = field(flag, value, parse_seccomp);
            if (!n) return std::unexpected(n.error());
            out.config.seccomp = *n;
        } else if (flag == "--fs") {
            auto share = parse_fs_option(value);
            if (!share) return fail(fmt::format("--fs {}: {}", value, share.error()));
            out.config.fs.push_back(std::move(*share));
        }
    }
    return out;
}

std::string help_text(std::string_view program) {
    return fmt::format(
        R"(Usage: {} --kernel KERNEL [options]

Boots Linux under KVM with virtio-fs shares (virtio-pci, optional DAX window).

Options:
  --kernel PATH       Linux x86-64 kernel, required: a bzImage (boot protocol 2.12 or
                      later), or an uncompressed vmlinux (ELF), which boots faster: no
                      decompression in the guest.
  --initrd PATH       initramfs to load with the kernel.
  --cmdline TEXT      kernel command line (default: "console=ttyS0 reboot=k panic=-1").
                      The guest console is the 8250 UART at 0x3f8 (ttyS0), on stdin/stdout.
  --cpus N            vCPUs, 1..{} (default 1).
  --memory SIZE       guest RAM, 64M..1T, a multiple of 4 KiB (default 512M).
  --fs SHARE          a virtio-fs share; repeat for several. SHARE is a comma list:
                        tag=T             mount tag, 1..36 bytes, unique (required)
                        dir=D             host directory to share (required)
                        dax-window=SIZE   DAX window size, a multiple of 2M up to 64G
                                          (default: no window)
                        cache=MODE        auto, always or never (default auto)
                        queues=N          request queues, 1..{} (default 1)
                        packed=on|off     offer packed virtqueues (default off)
                        readonly[=on|off] refuse writes (default off)
                        xattr=on|off      serve extended attributes (default off)
                        xattr-capability=on|off  let the guest set security.capability
                                          (file capabilities, honoured on the host);
                                          default off: EPERM. Needs xattr=on
                        xattr-trusted=on|off  let the guest set trusted.* (root-only on
                                          the host; overlayfs upper layers want it);
                                          default off: EPERM. Needs xattr=on
                        setid=on|off      keep set-user-ID/set-group-ID bits the guest
                                          asks for; default off: they are stripped (a
                                          directory keeps set-group-ID)
                        devices=on|off    create the device nodes the guest asks for,
                                          where the VMM may (CAP_MKNOD); never opened.
                                          off: only whiteouts (0:0). Default on
                        inode-dax=WHICH   files a guest mounted with dax=inode (Linux's
                                          default) reaches through the DAX window: all,
                                          none, or SIZE for files of at least SIZE bytes
                                          (default none; needs dax-window)
  --config FILE       JSON file with the same fields: {{"kernel": ..., "initrd": ...,
                      "cmdline": ..., "cpus": N, "memory": "1G" or bytes,
                      "log-level": ..., "tsc-deadline": ..., "seccomp": ...,
                      "fs": [{{"tag": ..., "dir": ...,
                      "dax-window": "1G", "cache": "auto", "queues": 1,
                      "packed": false, "readonly": false, "xattr": false,
                      "xattr-capability": false, "xattr-trusted": false,
                      "setid": false, "devices": true, "inode-dax": "none"}}]}}.
                      Command-line options override it; --fs adds to its shares.
  --log-level LEVEL   error, warn, info or debug (default info).
  --tsc-deadline MODE whether guests see the LAPIC's TSC-deadline timer: on, off, or auto
                      (default): on, except when this VMM itself runs under QEMU's TCG
                      emulator, where a guest with it once triple-faulted in our tests.
  --seccomp MODE      seccomp filters per thread class (vCPU, event loop, file server):
                      on (default): a syscall outside its class's list kills the VMM
                      with SIGSYS; log: allowed and logged by the kernel (audit type
                      1326, in dmesg), to find what a list lacks; off: no filters.
                      Capabilities are per thread whatever the mode: run as root, only
                      the file server's threads keep theirs. docs/security.md has the lists.
  --check-kvm         only check whether /dev/kvm can run a stock guest kernel: the
                      loaded KVM module and the CPU's VMX/SVM flags, then a probe guest
                      (real mode to long mode with paging, privileged instructions, I/O)
                      bounded to 10 s. Prints one line; exit 0 when usable, 1 when not.
  -h, --help          this text.

Sizes take a K, M, G or T suffix (binary units) or are bytes.

Ending the guest: the VMM exits 0 when Linux resets the machine through the i8042
(reboot=k, in the default command line; "reboot -f") or halts every vCPU with
interrupts off, which is how Linux without ACPI ends "poweroff -f" and "halt -f".
A KVM that cannot run stock kernels (kvm_pvm, which runs only PVM guests, or a CPU
without VMX/SVM) is refused at start with status 1 and the reason.
SIGINT and SIGTERM stop the VMM with status 0. A vCPU error exits with status 1 and
the reason; a bad option or config value exits with status 2.
)",
        program, kMaxCpus, kMaxQueues);
}

}  // namespace vfsdax::vmm_cli
