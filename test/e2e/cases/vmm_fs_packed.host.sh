#!/usr/bin/env bash
# vfsdax-vmm, 1 vCPU, packed rings: one share with a 4M DAX window mounted dax=always.
set -euo pipefail
# shellcheck source=fs_share.lib.sh
source "$E2E_FILES/fs_share.lib.sh"
seed_share "$E2E_WORK/dax"
console="$E2E_WORK/l2-console.log"
run_vmm "$console" --cpus 1 --memory 512M \
  --fs "tag=daxfs,dir=$E2E_WORK/dax,dax-window=4M,packed=on$fs_xattr_opt"
grep -q '^L2-CPUS: 1$' "$console" || fs_fail "L2 did not see 1 CPU"
grep -q '^L2-PACKED: 1$' "$console" || fs_fail "the guest driver did not negotiate packed rings"
check_share "$E2E_WORK/dax" packed-dax-always "$console"
check_dax_used "$console" daxfs
fs_finish
