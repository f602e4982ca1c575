#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vfsdax-vmm: the host shrinks a file the guest has DAX-mapped; the VMM repairs the window and goes on,
# and when the host extends the file again the guest reads its contents through the window.
# Needs --bin fsops (fs_share.lib.sh checks for it), --file cases/fs_share.lib.sh and, for L2,
# --l2-file vmm_dax_truncate_guest (cases/vmm_dax_truncate.guest.cpp, static).
set -euo pipefail
# shellcheck source=fs_share.lib.sh
source "$E2E_FILES/fs_share.lib.sh"
d="$E2E_WORK/share"
console="$E2E_WORK/l2-console.log"
mkdir -p "$d"
seq 1 1000000 >"$d/big.bin"  # 6.6 MiB: four 2 MiB ranges of the window
echo "untouched by the truncation" >"$d/other.txt"
ulimit -Sn "$(ulimit -Hn)"

# The VMM runs in the background so this script can act while the guest holds its mapping.
: >"$console.raw"
tail -f "$console.raw" &
tail_pid=$!
timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cmdline "console=ttyS0 reboot=k panic=-1" --cpus 2 --memory 512M \
  --fs "tag=daxfs,dir=$d,dax-window=16M,cache=auto" </dev/null >"$console.raw" 2>&1 &
vmm_pid=$!
while ! grep -q '^L2-DAX-MAPPED' "$console.raw" && kill -0 "$vmm_pid" 2>/dev/null; do sleep 0.2; done
if grep -q '^L2-DAX-MAPPED' "$console.raw"; then
  truncate -s 100 "$d/big.bin"
  : >"$d/truncated.flag"
  echo "$E2E_NAME: host shrank big.bin to $(stat -c %s "$d/big.bin") bytes"
  # Then L2 asks for the file back: the host extends it to its old contents, and L2 must
  # read them through the window (the shadowed ranges map the file again).
  while ! grep -q '^L2-DAX-GROW' "$console.raw" && kill -0 "$vmm_pid" 2>/dev/null; do sleep 0.2; done
  if grep -q '^L2-DAX-GROW' "$console.raw"; then
    seq 1 1000000 | dd of="$d/big.bin" conv=notrunc status=none
    : >"$d/grown.flag"
    echo "$E2E_NAME: host extended big.bin to $(stat -c %s "$d/big.bin") bytes"
  else
    fs_fail "L2 never asked for the file to grow again (L2-DAX-GROW)"
  fi
else
  fs_fail "L2 never reported its mapping (L2-DAX-MAPPED)"
fi
set +e
wait "$vmm_pid"
rc=$?
set -e
sleep 0.5  # let tail print the last lines
kill "$tail_pid"
tr -d '\r' <"$console.raw" >"$console"

[ "$rc" -ne 124 ] || fs_fail "vfsdax-vmm did not exit within ${E2E_VMM_TIMEOUT}s"
[ "$rc" -eq 0 ] || fs_fail "vfsdax-vmm exited with $rc"
grep -q '^E2E-L2-DONE: rc=0' "$console" || fs_fail "the L2 test did not finish with rc=0"
grep -q '^L2-DAX-TOUCHED' "$console" || fs_fail "L2 did not touch the pages past the new end"
grep -q "DAX window range(s) past their file's end" "$console" || fs_fail "the VMM logged no repair"
repairs="$(sed -n 's/.*virtio-fs "daxfs" DAX: .* \([0-9][0-9]*\) repairs.*/\1/p' "$console" | tail -n 1)"
[ "${repairs:-0}" -gt 0 ] || fs_fail "the VMM's DAX statistics show no repair: '${repairs}'"
[ "$(sha256sum <"$d/big.bin")" = "$(seq 1 1000000 | sha256sum)" ] || fs_fail "big.bin on the host is not what it extended it to"
[ "$(cat "$d/g-small.txt" 2>&1)" = "first line
second line" ] || fs_fail "g-small.txt on the host: '$(cat "$d/g-small.txt" 2>&1)'"
[ "$(sha256sum <"$d/g-after.txt")" = "$(seq 1 200000 | sha256sum)" ] || fs_fail "g-after.txt on the host is wrong"
fs_finish
