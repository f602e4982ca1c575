// SPDX-License-Identifier: Apache-2.0
// The cheap KVM check (modules, CPU flags) on fake /sys and /proc trees; the internal-error text.
#include "kvm_check.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

using namespace vfsdax::vmm;

namespace {

// A fake root with /sys/module/<name> for each module and /proc/cpuinfo holding `cpuinfo`
// (none when empty), removed afterwards.
class FakeHost {
public:
    FakeHost(std::initializer_list<const char*> modules, const std::string& cpuinfo) {
        char name[] = "/tmp/kvm_check_test.XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        root_ = name;
        for (const char* m : modules) std::filesystem::create_directories(root_ / "sys/module" / m);
        std::filesystem::create_directories(root_ / "proc");
        if (!cpuinfo.empty()) std::ofstream(root_ / "proc/cpuinfo") << cpuinfo;
    }
    ~FakeHost() { std::filesystem::remove_all(root_); }
    KvmHostRoots roots() const { return {root_ / "sys", root_ / "proc"}; }

private:
    std::filesystem::path root_;
};

// Two CPUs, as /proc/cpuinfo lists them, with `extra` among the flags.
std::string cpuinfo_with(const std::string& extra) {
    std::string text;
    for (int cpu = 0; cpu < 2; ++cpu) {
        text += "processor\t: " + std::to_string(cpu) + "\nvendor_id\t: AuthenticAMD\n";
        text += "flags\t\t: fpu vme de pse tsc msr pae " + extra + " lm constant_tsc\n";
        text += "bugs\t\t: sysret_ss_attrs\n\n";
    }
    return text;
}

}  // namespace

TEST_CASE("kvm_pvm without a hardware KVM module cannot run stock guests") {
    FakeHost host({"kvm", "kvm_pvm"}, cpuinfo_with("hypervisor"));
    const auto why = stock_guest_obstacle(host.roots());
    REQUIRE(why);
    CHECK(*why ==
          "/dev/kvm is kvm_pvm, which runs only PVM guest kernels, and the CPU offers neither "
          "VMX nor SVM");
}

TEST_CASE("kvm_pvm is named even when cpuinfo cannot be read") {
    FakeHost host({"kvm", "kvm_pvm"}, "");
    const auto why = stock_guest_obstacle(host.roots());
    REQUIRE(why);
    CHECK(*why == "/dev/kvm is kvm_pvm, which runs only PVM guest kernels");
}

TEST_CASE("a hardware KVM with its CPU flag passes the cheap check") {
    SECTION("AMD") {
        FakeHost host({"kvm", "kvm_amd"}, cpuinfo_with("svm"));
        CHECK_FALSE(stock_guest_obstacle(host.roots()));
    }
    SECTION("Intel") {
        FakeHost host({"kvm", "kvm_intel"}, cpuinfo_with("vmx"));
        CHECK_FALSE(stock_guest_obstacle(host.roots()));
    }
    SECTION("kvm_pvm loaded beside kvm_intel") {
        FakeHost host({"kvm", "kvm_intel", "kvm_pvm"}, cpuinfo_with("vmx"));
        CHECK_FALSE(stock_guest_obstacle(host.roots()));
    }
}

TEST_CASE("a CPU without VMX or SVM is named") {
    FakeHost host({"kvm"}, cpuinfo_with("svm_lock"));
    const auto why = stock_guest_obstacle(host.roots());
    REQUIRE(why);
    CHECK(why->starts_with("the CPU offers neither VMX nor SVM"));
}

TEST_CASE("no evidence, no verdict: no modules and no cpuinfo") {
    FakeHost host({}, "");
    CHECK_FALSE(stock_guest_obstacle(host.roots()));
}

TEST_CASE("a KVM internal error names the suberror and the likely reasons") {
    const std::string text = describe_internal_error(1);
    CHECK(text.starts_with("KVM internal error, suberror 1 (KVM's instruction emulator failed)"));
    CHECK(text.find("kvm_pvm") != std::string::npos);
    CHECK(text.find("nested virtualization") != std::string::npos);
    CHECK(text.find("emulator cannot run") != std::string::npos);
    CHECK(describe_internal_error(77).starts_with("KVM internal error, suberror 77; likely"));
}
