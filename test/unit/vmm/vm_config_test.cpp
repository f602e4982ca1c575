// SPDX-License-Identifier: Apache-2.0
// vfsdax-vmm command line and JSON config: good values parse, every bad one names its field.
#include "vm_config.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace vfsdax::vmm_cli;

namespace {

std::expected<CommandLine, std::string> parse(std::vector<std::string_view> args) {
    return parse_command_line(args);
}

std::string error_of(std::vector<std::string_view> args) {
    auto r = parse(args);
    REQUIRE_FALSE(r);
    return r.error();
}

std::string json_error(const char* text) {
    VmConfig config;
    auto r = apply_json(nlohmann::json::parse(text), "vm.json", config);
    REQUIRE_FALSE(r);
    return r.error();
}

}  // namespace

TEST_CASE("sizes take binary suffixes and reject junk") {
    CHECK(parse_size("4096") == 4096);
    CHECK(parse_size("1K") == 1024);
    CHECK(parse_size("512M") == 512ull << 20);
    CHECK(parse_size("1g") == 1ull << 30);
    CHECK(parse_size("2T") == 2ull << 40);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("G"));
    CHECK_FALSE(parse_size("1.5G"));
    CHECK_FALSE(parse_size("-1M"));
    CHECK_FALSE(parse_size("1X"));
    CHECK_FALSE(parse_size("99999999999T"));
    CHECK_FALSE(parse_size("99999999999999999999999"));
}

TEST_CASE("a full --fs value parses into every field") {
    auto share = parse_fs_option(
        "tag=data,dir=/srv,dax-window=1G,cache=never,queues=4,packed=on,readonly,"
        "xattr=on,inode-dax=1M,xattr-capability=on,xattr-trusted=on,setid=on,devices=off");
    REQUIRE(share);
    CHECK(share->tag == "data");
    CHECK(share->dir == "/srv");
    CHECK(share->dax_window == 1ull << 30);
    CHECK(share->cache == CacheMode::Never);
    CHECK(share->queues == 4);
    CHECK(share->packed);
    CHECK(share->readonly);
    CHECK(share->xattr);
    CHECK(share->xattr_capability);
    CHECK(share->xattr_trusted);
    CHECK(share->setid);
    CHECK_FALSE(share->devices);
    CHECK(share->inode_dax == InodeDaxMode::MinSize);
    CHECK(share->inode_dax_min_size == 1ull << 20);

    auto plain = parse_fs_option("dir=/srv,tag=t");
    REQUIRE(plain);
    CHECK(plain->dax_window == 0);
    CHECK(plain->cache == CacheMode::Auto);
    CHECK(plain->queues == 1);
    CHECK_FALSE(plain->packed);
    CHECK_FALSE(plain->readonly);
    CHECK_FALSE(plain->xattr);
    // The safe defaults: no file capabilities, no trusted.*, no set-ID bits; device nodes
    // where the VMM may create them.
    CHECK_FALSE(plain->xattr_capability);
    CHECK_FALSE(plain->xattr_trusted);
    CHECK_FALSE(plain->setid);
    CHECK(plain->devices);
    CHECK(plain->inode_dax == InodeDaxMode::None);
}

TEST_CASE("inode-dax takes all, none or a minimum file size") {
    auto all = parse_fs_option("tag=t,dir=/srv,inode-dax=all,dax-window=2M");
    REQUIRE(all);
    CHECK(all->inode_dax == InodeDaxMode::All);
    auto none = parse_fs_option("tag=t,dir=/srv,inode-dax=none");
    REQUIRE(none);
    CHECK(none->inode_dax == InodeDaxMode::None);
    auto bytes = parse_fs_option("tag=t,dir=/srv,dax-window=2M,inode-dax=4096");
    REQUIRE(bytes);
    CHECK(bytes->inode_dax == InodeDaxMode::MinSize);
    CHECK(bytes->inode_dax_min_size == 4096);
}

TEST_CASE("every bad --fs field is named with the reason") {
    struct Case {
        const char* value;
        const char* expected;
    };
    const Case cases[] = {
        {"dir=/srv", "tag: is missing"},
        {"tag=t", "dir: is missing"},
        {"tag=,dir=/srv", "tag: is empty"},
        {"tag=0123456789012345678901234567890123456,dir=/srv", "tag: \"0123456789"},
        {"tag=t,dir=", "dir: is empty"},
        {"tag=t,dir=/srv,dax-window=3M", "dax-window: 3M is not a multiple of 2 MiB"},
        {"tag=t,dir=/srv,dax-window=lots", "dax-window: \"lots\" is not a size"},
        {"tag=t,dir=/srv,dax-window=128G", "dax-window: 128G is larger than 64G"},
        {"tag=t,dir=/srv,cache=sometimes", "cache: \"sometimes\" is not one of auto"},
        {"tag=t,dir=/srv,queues=0", "queues: 0 is not in 1..64"},
        {"tag=t,dir=/srv,queues=x", "queues: \"x\" is not a number"},
        {"tag=t,dir=/srv,packed=yes", "packed: \"yes\" is not on or off"},
        {"tag=t,dir=/srv,packed", "packed: \"\" is not on or off"},
        {"tag=t,dir=/srv,readonly=maybe", "readonly: \"maybe\" is not on or off"},
        {"tag=t,dir=/srv,xattr", "xattr: \"\" is not on or off"},
        {"tag=t,dir=/srv,setid=yes", "setid: \"yes\" is not on or off"},
        {"tag=t,dir=/srv,devices", "devices: \"\" is not on or off"},
        {"tag=t,dir=/srv,xattr-trusted=on",
         "xattr-trusted: needs xattr=on (without it no xattr reaches the share)"},
        {"tag=t,dir=/srv,xattr=off,xattr-capability=on", "xattr-capability: needs xattr=on"},
        {"tag=t,dir=/srv,dax-window=2M,inode-dax=some",
         "inode-dax: \"some\" is not all, none or a file size (such as 1M)"},
        {"tag=t,dir=/srv,dax-window=2M,inode-dax", "inode-dax: has no value"},
        {"tag=t,dir=/srv,inode-dax=all", "inode-dax: needs a dax-window"},
        {"tag=t,dir=/srv,colour=red", "colour: is not a field"},
        {"tag=t,dir=/srv,tag=u", "tag: is given twice"},
        {"tag,dir=/srv", "tag: has no value"},
        {"tag=t,dir=/srv,=x", "has no field name"},
    };
    for (const Case& c : cases) {
        INFO(c.value);
        auto r = parse_fs_option(c.value);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error(), Catch::Contains(c.expected));
    }
}

TEST_CASE("the command line fills the config and names bad flags") {
    auto r = parse({"--kernel",       "bz",
                    "--initrd",       "rd",
                    "--cmdline",      "console=ttyS0 quiet",
                    "--cpus",         "4",
                    "--memory",       "1G",
                    "--log-level",    "debug",
                    "--fs",           "tag=a,dir=/x",
                    "--fs",           "tag=b,dir=/y",
                    "--tsc-deadline", "off",
                    "--seccomp",      "log"});
    REQUIRE(r);
    CHECK_FALSE(r->help);
    CHECK(r->config.kernel == "bz");
    CHECK(r->config.initrd == "rd");
    CHECK(r->config.cmdline == "console=ttyS0 quiet");
    CHECK(r->config.cpus == 4);
    CHECK(r->config.memory == 1ull << 30);
    CHECK(r->config.log_level == LogLevel::Debug);
    CHECK(r->config.tsc_deadline == TscDeadline::Off);
    CHECK(r->config.seccomp == Seccomp::Log);
    REQUIRE(r->config.fs.size() == 2);
    CHECK(r->config.fs[1].tag == "b");

    CHECK(parse({"--help"})->help);
    CHECK(parse({"--check-kvm"})->check_kvm);
    CHECK_FALSE(parse({"--kernel", "k"})->check_kvm);
    CHECK_THAT(error_of({"--check-kvm", "--kernel", "k"}),
               Catch::StartsWith("--check-kvm: takes no other option"));
    CHECK_THAT(error_of({"--cpus", "0"}), Catch::StartsWith("--cpus: 0 is not in 1..64"));
    CHECK_THAT(error_of({"--cpus", "65"}), Catch::StartsWith("--cpus: 65 is not in 1..64"));
    CHECK_THAT(error_of({"--cpus", "two"}), Catch::StartsWith("--cpus: \"two\" is not a number"));
    CHECK_THAT(error_of({"--memory", "1M"}), Catch::StartsWith("--memory: 1M is not between"));
    CHECK_THAT(error_of({"--memory", "100000001"}),
               Catch::StartsWith("--memory: 100000001 is not a multiple of 4 KiB"));
    CHECK_THAT(error_of({"--memory", "big"}), Catch::StartsWith("--memory: \"big\" is not a size"));
    CHECK_THAT(error_of({"--log-level", "loud"}), Catch::StartsWith("--log-level: \"loud\""));
    CHECK(error_of({"--tsc-deadline", "yes"}) ==
          "--tsc-deadline: \"yes\" is not one of auto, on, off");
    CHECK(parse({"--kernel", "k"})->config.seccomp == Seccomp::On);
    CHECK(parse({"--seccomp", "off"})->config.seccomp == Seccomp::Off);
    CHECK(error_of({"--seccomp", "kill"}) == "--seccomp: \"kill\" is not one of on, log, off");
    CHECK_THAT(error_of({"--kernel"}), Catch::StartsWith("--kernel: has no value"));
    CHECK_THAT(error_of({"--kernel", ""}), Catch::StartsWith("--kernel: is empty"));
    CHECK_THAT(error_of({"--frobnicate", "1"}),
               Catch::StartsWith("--frobnicate: is not an option"));
    CHECK_THAT(error_of({"stray"}), Catch::StartsWith("stray: is not an option"));
    CHECK_THAT(error_of({"--fs", "tag=t"}), Catch::StartsWith("--fs tag=t: dir: is missing"));
    CHECK_THAT(error_of({"--config", "/nonexistent/vm.json"}),
               Catch::StartsWith("--config: /nonexistent/vm.json: "));
}

TEST_CASE("JSON config with every field") {
    VmConfig config;
    auto r = apply_json(nlohmann::json::parse(R"({
        "kernel": "bz", "initrd": "rd", "cmdline": "quiet", "cpus": 2, "memory": "2G",
        "log-level": "warn", "tsc-deadline": "on", "seccomp": "off",
        "fs": [{"tag": "a", "dir": "/x", "dax-window": "512M", "cache": "always", "queues": 2,
                "packed": true, "readonly": true, "inode-dax": "all", "xattr": true,
                "xattr-capability": true, "xattr-trusted": true, "setid": true,
                "devices": false},
               {"tag": "b", "dir": "/y", "dax-window": 2097152, "inode-dax": 65536}]})"),
                        "vm.json", config);
    REQUIRE(r);
    CHECK(config.kernel == "bz");
    CHECK(config.initrd == "rd");
    CHECK(config.cmdline == "quiet");
    CHECK(config.cpus == 2);
    CHECK(config.memory == 2ull << 30);
    CHECK(config.log_level == LogLevel::Warn);
    CHECK(config.tsc_deadline == TscDeadline::On);
    CHECK(config.seccomp == Seccomp::Off);
    REQUIRE(config.fs.size() == 2);
    CHECK(config.fs[0].dax_window == 512ull << 20);
    CHECK(config.fs[0].cache == CacheMode::Always);
    CHECK(config.fs[0].queues == 2);
    CHECK(config.fs[0].packed);
    CHECK(config.fs[0].readonly);
    CHECK(config.fs[0].xattr);
    CHECK(config.fs[0].xattr_capability);
    CHECK(config.fs[0].xattr_trusted);
    CHECK(config.fs[0].setid);
    CHECK_FALSE(config.fs[0].devices);
    CHECK_FALSE(config.fs[1].setid);
    CHECK(config.fs[1].devices);
    CHECK(config.fs[1].dax_window == 2ull << 20);
    CHECK(config.fs[1].cache == CacheMode::Auto);
    CHECK(config.fs[0].inode_dax == InodeDaxMode::All);
    CHECK(config.fs[1].inode_dax == InodeDaxMode::MinSize);
    CHECK(config.fs[1].inode_dax_min_size == 65536);

    VmConfig bytes;
    REQUIRE(apply_json(nlohmann::json::parse(R"({"memory": 268435456})"), "vm.json", bytes));
    CHECK(bytes.memory == 256ull << 20);
}

TEST_CASE("every bad JSON field is named with the file and the reason") {
    CHECK(json_error("[]") == "vm.json: the document is not a JSON object");
    CHECK(json_error(R"({"cpus": 0})") == "vm.json: cpus: 0 is not in 1..64");
    CHECK(json_error(R"({"cpus": -1})") == "vm.json: cpus: -1 is not a positive integer");
    CHECK(json_error(R"({"cpus": "2"})") == "vm.json: cpus: \"2\" is not a positive integer");
    CHECK(json_error(R"({"memory": "12K"})") == "vm.json: memory: 12K is not between 64M and 1T");
    CHECK(json_error(R"({"memory": true})") ==
          "vm.json: memory: true is not a positive integer or a size string");
    CHECK(json_error(R"({"kernel": 7})") == "vm.json: kernel: 7 is not a string");
    CHECK(json_error(R"({"kernel": ""})") == "vm.json: kernel: is empty");
    CHECK(json_error(R"({"log-level": "chatty"})") ==
          "vm.json: log-level: \"chatty\" is not one of error, warn, info, debug");
    CHECK(json_error(R"({"tsc-deadline": true})") == "vm.json: tsc-deadline: true is not a string");
    CHECK(json_error(R"({"seccomp": "loud"})") ==
          "vm.json: seccomp: \"loud\" is not one of on, log, off");
    CHECK(json_error(R"({"seccomp": false})") == "vm.json: seccomp: false is not a string");
    CHECK_THAT(json_error(R"({"colour": "red"})"),
               Catch::StartsWith("vm.json: colour: is not a field"));
    CHECK(json_error(R"({"fs": {}})") == "vm.json: fs: is not an array");
    CHECK(json_error(R"({"fs": [3]})") == "vm.json: fs[0]: is not an object");
    CHECK(json_error(R"({"fs": [{"tag": "a"}]})") == "vm.json: fs[0]: dir: is missing");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x"}, {"tag": 1, "dir": "/y"}]})") ==
          "vm.json: fs[1]: tag: 1 is not a string");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "packed": "on"}]})") ==
          "vm.json: fs[0]: packed: \"on\" is not true or false");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "queues": "2"}]})") ==
          "vm.json: fs[0]: queues: \"2\" is not a positive integer");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "queues": 99}]})") ==
          "vm.json: fs[0]: queues: 99 is not in 1..64");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "dax-window": "1M"}]})") ==
          "vm.json: fs[0]: dax-window: 1M is not a multiple of 2 MiB");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "dax-window": false}]})") ==
          "vm.json: fs[0]: dax-window: false is not a size");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "dax-window": "2M",
                              "inode-dax": true}]})") ==
          "vm.json: fs[0]: inode-dax: true is not a size, \"all\" or \"none\"");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "inode-dax": "all"}]})") ==
          "vm.json: fs[0]: inode-dax: needs a dax-window (files reach DAX only through one)");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "dax-window": "2M",
                              "inode-dax": "big"}]})") ==
          "vm.json: fs[0]: inode-dax: \"big\" is not all, none or a file size (such as 1M)");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "setid": "on"}]})") ==
          "vm.json: fs[0]: setid: \"on\" is not true or false");
    CHECK(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "xattr-trusted": true}]})") ==
          "vm.json: fs[0]: xattr-trusted: needs xattr=on (without it no xattr reaches the share)");
    CHECK_THAT(json_error(R"({"fs": [{"tag": "a", "dir": "/x", "mode": "fast"}]})"),
               Catch::StartsWith("vm.json: fs[0]: mode: is not a field"));
}

TEST_CASE("--config applies first and flags override it") {
    const auto dir = std::filesystem::temp_directory_path() / "vfsdax-vm-config-test";
    std::filesystem::create_directories(dir);
    const auto path = (dir / "vm.json").string();
    {
        std::ofstream out(path);
        out << R"({"kernel": "from-json", "cpus": 2, "fs": [{"tag": "j", "dir": "/j"}]})";
    }
    auto r = parse({"--cpus", "3", "--config", path, "--fs", "tag=c,dir=/c"});
    REQUIRE(r);
    CHECK(r->config.kernel == "from-json");
    CHECK(r->config.cpus == 3);
    REQUIRE(r->config.fs.size() == 2);
    CHECK(r->config.fs[0].tag == "j");
    CHECK(r->config.fs[1].tag == "c");

    {
        std::ofstream out(path);
        out << "{not json";
    }
    CHECK(error_of({"--config", path}) == "--config: " + path + ": is not valid JSON");
    {
        std::ofstream out(path);
        out << R"({"cpus": 100})";
    }
    CHECK(error_of({"--config", path}) == path + ": cpus: 100 is not in 1..64");
    std::filesystem::remove_all(dir);
}

TEST_CASE("validation: kernel required, tags unique, directories exist") {
    VmConfig config;
    CHECK(validate(config).error() == "--kernel: is missing");
    config.kernel = "bz";
    CHECK(validate(config));

    const auto dir = std::filesystem::temp_directory_path() / "vfsdax-validate-test";
    std::filesystem::create_directories(dir);
    const auto file = dir / "plain";
    std::ofstream(file) << "x";
    config.fs.push_back(FsShare{.tag = "a", .dir = dir.string()});
    CHECK(validate(config));
    config.fs.push_back(FsShare{.tag = "a", .dir = dir.string()});
    CHECK(validate(config).error() == "--fs tag=a: tag: is used by another share");
    config.fs[1].tag = "b";
    config.fs[1].dir = file.string();
    CHECK(validate(config).error() == "--fs tag=b: dir: " + file.string() + " is not a directory");
    config.fs[1].dir = (dir / "missing").string();
    CHECK_THAT(validate(config).error(),
               Catch::StartsWith("--fs tag=b: dir: " + (dir / "missing").string() + ": No such"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("--help names every option and share field") {
    const std::string help = help_text("vfsdax-vmm");
    for (const char* word :
         {"--kernel",       "--initrd",    "--cmdline",     "--cpus",         "--memory",
          "--fs",           "--config",    "--log-level",   "--tsc-deadline", "\"tsc-deadline\"",
          "--seccomp",      "\"seccomp\"", "--help",        "tag=",           "dir=",
          "dax-window=",    "cache=",      "queues=",       "packed=",        "readonly",
          "xattr=",         "inode-dax=",  "\"inode-dax\"", "--check-kvm",    "xattr-capability=",
          "xattr-trusted=", "setid=",      "devices=",      "\"setid\"",      "\"devices\""})
        CHECK_THAT(help, Catch::Contains(word));
}
