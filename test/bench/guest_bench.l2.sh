#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# guest_bench, L2 side: times reads of the 64 MiB file and stats of 1000 files on this VMM's share.
# Under vfsdax-vmm the share is virtio-fs (tag bench), measured mounted dax=always and then
# dax=never; under QEMU it is virtio-9p (tag bench, default 9p mount options). Prints
# "BENCH-PASS: LABEL read N" before and "BENCH: LABEL read bytes=B ns=T" after each read pass,
# and "BENCH: LABEL stat files=N ns=T"; three passes each, caches dropped before every pass.
# guest_bench.boot_only on the command line: boot time only.
FSOPS=/e2e/files/fsops
fail() {
  echo "E2E-FAIL: guest_bench L2: $*"
  exit 1
}
if grep -qw guest_bench.boot_only /proc/cmdline; then
  echo "BENCH: boot only"
  exit 0
fi
kind=""
for d in /sys/bus/virtio/devices/*; do
  case "$(cat "$d/device")" in
    0x001a) kind=virtiofs ;;
    0x0009) kind=9p ;;
  esac
done
[ -n "$kind" ] || fail "neither a virtio-fs nor a virtio-9p device is on the virtio bus"

drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

measure() {
  label="$1"
  for pass in 1 2 3; do
    drop_caches
    # The host counts KVM's page faults from this line to the result.
    echo "BENCH-PASS: $label read $pass"
    r="$($FSOPS read-time /mnt/bench/big.bin)" || fail "$label: reading big.bin failed (pass $pass)"
    echo "BENCH: $label read $r"
    # Time for the host to read its counters while this pass's DAX mappings still stand (the
    # next drop_caches removes them).
    sleep 1
  done
  for pass in 1 2 3; do
    drop_caches
    r="$($FSOPS stat-time /mnt/bench/files 1000)" || fail "$label: stat of files/f1..f1000 failed (pass $pass)"
    echo "BENCH: $label stat $r"
  done
}

# mount_bench LABEL WANT_DAX TYPE OPTIONS: mounts the share, checks its DAX state, measures.
mount_bench() {
  mkdir -p /mnt/bench
  mount -t "$3" bench /mnt/bench -o "$4" || fail "$1: mount -t $3 -o $4 failed"
  grep ' /mnt/bench ' /proc/mounts
  got="$($FSOPS dax /mnt/bench/big.bin 2>&1)"
  [ "$got" = "$2" ] || fail "$1: statx says big.bin is '$got', want $2"
  measure "$1"
  umount /mnt/bench || fail "$1: umount failed"
}

case "$kind" in
  virtiofs)
    mount_bench dax dax virtiofs dax=always
    mount_bench nodax nodax virtiofs dax=never
    ;;
  9p)
    mount_bench 9p nodax 9p trans=virtio,version=9p2000.L
    ;;
esac
