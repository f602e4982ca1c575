#!/usr/bin/env bash
# vfsdax-vmm, 2 vCPUs, split rings: one share with a 4M DAX window (dax=always), one without (dax=never).
set -euo pipefail
# shellcheck source=fs_share.lib.sh
source "$E2E_FILES/fs_share.lib.sh"
seed_share "$E2E_WORK/dax"
seed_share "$E2E_WORK/plain"
console="$E2E_WORK/l2-console.log"
run_vmm "$console" --cpus 2 --memory 512M \
  --fs "tag=daxfs,dir=$E2E_WORK/dax,dax-window=4M,packed=off$fs_xattr_opt" \
  --fs "tag=plainfs,dir=$E2E_WORK/plain,packed=off$fs_xattr_opt"
grep -q '^L2-CPUS: 2$' "$console" || fs_fail "L2 did not see 2 CPUs"
check_share "$E2E_WORK/dax" dax-always "$console"
check_share "$E2E_WORK/plain" dax-never "$console"
check_dax_used "$console" daxfs
fs_finish
