#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 initramfs side of vmm_rootfs: the command line names a virtiofs root and the driver is in.
# /init then mounts that root and switch_roots into it (build-l2-initramfs); cases/vmm_rootfs.init
# runs from there.
fail() { echo "E2E-FAIL: vmm_rootfs initramfs: $*"; exit 1; }
grep -q 'virtiofs$' /proc/filesystems || fail "virtiofs is not registered"
for want in rootfstype=virtiofs root=rootfs rootflags=dax=always; do
  grep -qw "$want" /proc/cmdline || fail "the command line lacks $want: $(cat /proc/cmdline)"
done
echo "E2E-PASS: vmm_rootfs_initramfs"
