// SPDX-License-Identifier: Apache-2.0
// kvm_uapi: <linux/kvm.h> with its flexible arrays laid out as the kernel lays them out.
#pragma once

// Debian 12's uapi headers (Linux 6.1) wrap flexible arrays in a struct holding an empty
// struct, which is one byte in C++: kvm_cpuid2.entries lands at offset 12 instead of 8 and
// the ioctl numbers encode the wrong size (KVM_GET_SUPPORTED_CPUID fails with EINVAL).
// Later uapi headers define the macro for C++ as a zero-length array; so does this file.
#include <linux/stddef.h>
#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

static_assert(sizeof(kvm_cpuid2) == 8, "kvm_cpuid2 must match the kernel's layout");
static_assert(sizeof(kvm_msrs) == 8, "kvm_msrs must match the kernel's layout");
