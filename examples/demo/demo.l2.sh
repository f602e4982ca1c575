#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Demo guest side: mount the share with dax=always, read, write, show that DAX is on.
fail() { echo "E2E-FAIL: demo-guest: $*"; exit 1; }
echo "guest: $(grep -c ^processor /proc/cpuinfo) vCPUs, Linux $(uname -r)"
mkdir -p /mnt/demo
mount -t virtiofs demo /mnt/demo -o dax=always || fail "mount -o dax=always failed"
echo "guest: \$ grep virtiofs /proc/mounts"
grep virtiofs /proc/mounts
echo "guest: \$ dmesg | grep virtiofs"
dmesg | grep virtiofs
echo "guest: \$ cat /mnt/demo/hello.txt"
cat /mnt/demo/hello.txt || fail "reading hello.txt failed"
echo "Hello from the guest (written through the DAX window)" >/mnt/demo/from-guest.txt ||
  fail "writing from-guest.txt failed"
dax="$(/e2e/files/fsops dax /mnt/demo/hello.txt)" || fail "statx failed"
[ "$dax" = dax ] || fail "hello.txt is not accessed through DAX (statx says $dax)"
echo "guest: DAX is on: statx reports STATX_ATTR_DAX for /mnt/demo/hello.txt"
umount /mnt/demo || fail "umount failed"
echo "E2E-PASS: demo-guest"
