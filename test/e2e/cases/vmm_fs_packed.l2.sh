#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 side of vmm_fs_packed: packed rings negotiated, dax=always mount through every operation,
# interrupts by INTx (pci=nomsi).
. /e2e/files/fs_ops.l2lib.sh
echo "L2-CPUS: $(grep -c ^processor /proc/cpuinfo)"
# Feature bit 34 (VIRTIO_F_RING_PACKED) in the driver's negotiated features string.
for d in /sys/bus/virtio/devices/*; do
  [ "$(cat "$d/device")" = 0x001a ] || continue
  echo "L2-PACKED: $(cut -c35 "$d/features")"
done
mkdir -p /mnt/dax
mount -t virtiofs daxfs /mnt/dax -o dax=always || { echo "E2E-FAIL: mount daxfs -o dax=always failed"; exit 1; }
grep virtiofs /proc/mounts
rc=0
fs_ops_run /mnt/dax packed-dax-always dax || rc=1
umount /mnt/dax || { echo "E2E-FAIL: umount /mnt/dax failed"; rc=1; }
# Booted with pci=nomsi: every interrupt of the share came through INTx (checked on the host).
echo "L2-MSI-LINES: $(grep -c PCI-MSI /proc/interrupts)"
echo "L2-INTX: $(grep 'IO-APIC.*virtio' /proc/interrupts)"
exit $rc
