#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Demo host side: share a directory with a DAX window, boot the guest, show what it wrote.
set -euo pipefail
share="$E2E_WORK/share"
mkdir -p "$share"
echo "Hello from the host (written at $(date -u +%H:%M:%S) UTC, $E2E_MODE mode)" >"$share/hello.txt"
echo "demo: sharing $share as tag 'demo' with a 64M DAX window; booting the guest from the" \
  "uncompressed kernel ($(basename "$E2E_VMLINUX"))"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_VMLINUX" --initrd "$E2E_INITRD" \
  --cpus 2 --memory 512M --cmdline "console=ttyS0 reboot=k panic=-1 quiet" \
  --fs "tag=demo,dir=$share,dax-window=64M" </dev/null
rc=$?
set -e
[ "$rc" -eq 0 ] || { echo "E2E-FAIL: demo: vfsdax-vmm exited with $rc"; exit 1; }
echo "demo: vfsdax-vmm exited 0; the guest's file, read on the host:"
cat "$share/from-guest.txt" || { echo "E2E-FAIL: demo: the guest's file is not on the host"; exit 1; }
echo "E2E-PASS: demo"
