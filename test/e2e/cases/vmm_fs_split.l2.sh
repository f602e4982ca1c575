#!/bin/sh
# L2 side of vmm_fs_split: dax=always on daxfs, dax=never on plainfs, each through every operation.
. /e2e/files/fs_ops.l2lib.sh
echo "L2-CPUS: $(grep -c ^processor /proc/cpuinfo)"
rc=0
mkdir -p /mnt/dax /mnt/plain
# A share without a DAX window must refuse dax=always.
if mount -t virtiofs plainfs /mnt/plain -o dax=always 2>/dev/null; then
  echo "E2E-FAIL: dax=always mounted plainfs, which has no DAX window"
  umount /mnt/plain
  rc=1
fi
mount -t virtiofs daxfs /mnt/dax -o dax=always || { echo "E2E-FAIL: mount daxfs -o dax=always failed"; exit 1; }
mount -t virtiofs plainfs /mnt/plain -o dax=never || { echo "E2E-FAIL: mount plainfs -o dax=never failed"; exit 1; }
grep virtiofs /proc/mounts
grep -q '^daxfs /mnt/dax virtiofs .*dax=always' /proc/mounts || { echo "E2E-FAIL: /proc/mounts shows no dax=always for daxfs"; rc=1; }
fs_ops_run /mnt/dax dax-always dax || rc=1
umount /mnt/dax || { echo "E2E-FAIL: umount /mnt/dax failed"; rc=1; }
fs_ops_run /mnt/plain dax-never nodax || rc=1
umount /mnt/plain || { echo "E2E-FAIL: umount /mnt/plain failed"; rc=1; }
exit $rc
