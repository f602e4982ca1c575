#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vfsdax-vmm, 2 vCPUs, split rings: one share with a 4M DAX window (dax=always), one without
# (dax=never); then L2 moves the first one's BARs and uses it again at the new place.
set -euo pipefail
# shellcheck source=fs_share.lib.sh
source "$E2E_FILES/fs_share.lib.sh"
seed_share "$E2E_WORK/dax"
seed_share "$E2E_WORK/plain"
# For L2 after the BAR move (vmm_fs_split.l2.sh, bar_move).
seq 1 100000 >"$E2E_WORK/dax/moved.txt"
sha256sum "$E2E_WORK/dax/moved.txt" | cut -d' ' -f1 >"$E2E_WORK/dax/moved.sha256"
console="$E2E_WORK/l2-console.log"
run_vmm "$console" --cpus 2 --memory 512M \
  --fs "tag=daxfs,dir=$E2E_WORK/dax,dax-window=4M,packed=off$fs_xattr_opt" \
  --fs "tag=plainfs,dir=$E2E_WORK/plain,packed=off$fs_xattr_opt"
grep -q '^L2-CPUS: 2$' "$console" || fs_fail "L2 did not see 2 CPUs"
check_share "$E2E_WORK/dax" dax-always "$console"
check_share "$E2E_WORK/plain" dax-never "$console"
check_dax_used "$console" daxfs
check_pci_irq "$console"
# The BAR move: L2's own checks, then what it wrote through the moved window, here.
grep -q '^L2-BAR-MOVE: ok$' "$console" || fs_fail "L2's BAR move did not pass"
grep '^L2-BARS: ' "$console" || true
d="$E2E_WORK/dax"
[ "$(dd if="$d/moved.txt" bs=1 skip=4096 count=10 2>/dev/null)" = MOVED-MMAP ] ||
  fs_fail "moved.txt@4096 on the host is not MOVED-MMAP"
[ "$(head -c 4096 "$d/moved.txt")" = "$(seq 1 100000 | head -c 4096)" ] ||
  fs_fail "moved.txt changed before offset 4096"
[ "$(cat "$d/g-moved.txt" 2>&1)" = "written after the move" ] || fs_fail "g-moved.txt on the host is wrong"
# The VMM follows every BAR write; it warns when a placement fails.
! grep -E 'overlaps another device|DAX window [0-9]+( at 0x[0-9a-f]+)?:' "$console" ||
  fs_fail "the VMM could not follow a BAR move"
fs_finish
