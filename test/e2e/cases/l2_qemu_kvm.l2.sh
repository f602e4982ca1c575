#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 side of l2_qemu_kvm: the virtio-pci and virtio-fs drivers load and a virtio device binds.
# Also the quick L2 check without any KVM: boot-l2-qemu with an initramfs built from it.
# Runs under busybox sh inside the L2 guest's initramfs.
fail() { echo "E2E-FAIL: l2_modules: $*"; exit 1; }
for m in virtio virtio_ring virtio_pci fuse virtiofs; do
  grep -q "^$m " /proc/modules || fail "module $m is not loaded"
done
grep -q 'virtiofs$' /proc/filesystems || fail "virtiofs is not in /proc/filesystems"
[ -d /sys/bus/virtio/drivers/virtiofs ] || fail "no virtiofs driver on the virtio bus"
[ -d /sys/bus/pci/drivers/virtio-pci ] || fail "no virtio-pci driver on the pci bus"
# When booted with a virtio-pci device (boot-l2-qemu adds virtio-rng-pci), it must bind.
if [ -n "$(ls /sys/bus/virtio/devices 2>/dev/null)" ]; then
  echo "l2_modules: virtio devices: $(ls /sys/bus/virtio/devices | tr '\n' ' ')"
else
  fail "no device on the virtio bus (was a virtio-pci device attached?)"
fi
echo "E2E-PASS: l2_modules"
