#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# soak, host side: vfsdax-vmm with 2 vCPUs and two shares under N minutes of mixed load; prints
# operations, errors, resets, and the VMM's memory and descriptors over the run.
#
# Run by test/e2e/run (the e2e host-script contract, test/e2e/README.md), directly where
# /dev/kvm runs stock guests, else inside the nested L1. SOAK_MINUTES (default 10; `run --env
# SOAK_MINUTES` brings it into L1) sets the load's length; soak.l2.sh does the guest side.
# Every minute: "SOAK-SAMPLE: t=S rss_kb=R fds=F" (the VMM's resident memory and open
# descriptors). At the end one "SOAK: ..." summary line. Fails (E2E-FAIL) on a guest reset
# (the VMM reports a triple fault; reboot=k makes any other reset end the VMM too), a failed
# check in L2, a host file that differs from the guest's model, NEEDS_RESET, or memory or
# descriptors still growing in the second half of the run beyond a margin (the first half is
# warm-up: the page cache of the shares and the server's inode table fill).
set -euo pipefail
name=soak
fail() { echo "E2E-FAIL: $name: $*"; bad=1; }
bad=0
minutes="${SOAK_MINUTES:-10}"
[[ "$minutes" =~ ^[1-9][0-9]*$ ]] || { echo "E2E-FAIL: $name: SOAK_MINUTES wants a positive number, got '$minutes'"; exit 1; }
dataexer="$E2E_BIN/dataexer"
[ -x "$dataexer" ] || { echo "E2E-FAIL: $name: $dataexer is missing (pass --bin dataexer)"; exit 1; }
mkdir -p "$E2E_WORK/dax" "$E2E_WORK/plain"
ulimit -Sn "$(ulimit -Hn)"
console="$E2E_WORK/l2-console.log"
: >"$console.raw"

start=$(date +%s)
# The VMM's own bound: the load, plus boot and shutdown with room (nested boots take a minute).
timeout -k 10 $((minutes * 60 + 600)) "$E2E_VMM" --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cmdline "console=ttyS0 reboot=k panic=-1 soak.minutes=$minutes" --cpus 2 --memory 1G \
  --fs "tag=daxfs,dir=$E2E_WORK/dax,dax-window=16M" \
  --fs "tag=plainfs,dir=$E2E_WORK/plain" </dev/null >"$console.raw" 2>&1 &
vmm=$!
tail -f "$console.raw" &
tail_pid=$!

# sample VAR_RSS VAR_FDS: the VMM's resident set (kB) and open descriptors now.
sample() {
  local key value rest
  printf -v "$1" 0
  while read -r key value rest; do
    [ "$key" != VmRSS: ] || printf -v "$1" %s "$value"
  done <"/proc/$vmm/status"
  local open_fds=("/proc/$vmm/fd"/*)
  printf -v "$2" %s "${#open_fds[@]}"
}
samples_t=() samples_rss=() samples_fds=()
while ! grep -q '^L2-SOAK:' "$console.raw" && kill -0 "$vmm" 2>/dev/null; do sleep 1; done
next=$(date +%s)
while kill -0 "$vmm" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$next" ] && sample rss fds 2>/dev/null; then
    t=$(($(date +%s) - start))
    samples_t+=("$t") samples_rss+=("$rss") samples_fds+=("$fds")
    echo "SOAK-SAMPLE: t=$t rss_kb=$rss fds=$fds"
    next=$((next + 60))
  fi
  sleep 1
done
set +e
wait "$vmm"
rc=$?
set -e
sleep 0.5
kill "$tail_pid" 2>/dev/null || true
tr -d '\r' <"$console.raw" >"$console"

resets="$(grep -c 'triple fault' "$console" || true)"
[ "$rc" -eq 0 ] || fail "vfsdax-vmm exited with $rc (resets seen: $resets)"
[ "$resets" -eq 0 ] || fail "the guest reset $resets time(s): $(grep -m1 'triple fault' "$console")"
grep -q '^E2E-PASS: soak_l2' "$console" || fail "L2 did not finish its load cleanly (see above)"
! grep -q 'device needs a reset' "$console" || fail "$(grep -m1 'device needs a reset' "$console")"
for label in dax plain; do
  want="$(sed -n "s/^L2-SOAK-DATA: $label: ops=[0-9]* \(size=[0-9]* hash=[0-9a-f]*\).*/\1/p" "$console")"
  got="$("$dataexer" hash "$E2E_WORK/$label/soak-data.bin" 2>&1 || true)"
  [ -n "$want" ] && [ "$got" = "$want" ] ||
    fail "$label: soak-data.bin on the host has '$got', the guest's model '${want:-none}'"
done

# Growth: the last sample against the highest of the first half, with a margin for noise.
n=${#samples_t[@]}
growth=""
if [ "$n" -ge 4 ]; then
  half=$((n / 2)) max_rss=0 max_fds=0
  for ((i = 0; i < half; i++)); do
    [ "${samples_rss[i]}" -le "$max_rss" ] || max_rss=${samples_rss[i]}
    [ "${samples_fds[i]}" -le "$max_fds" ] || max_fds=${samples_fds[i]}
  done
  last_rss=${samples_rss[n - 1]} last_fds=${samples_fds[n - 1]}
  growth="rss_kb ${samples_rss[0]} -> max of first half $max_rss -> last $last_rss, fds ${samples_fds[0]} -> $max_fds -> $last_fds"
  [ "$last_rss" -le $((max_rss + max_rss / 4 + 65536)) ] || fail "the VMM's memory kept growing: $growth"
  [ "$last_fds" -le $((max_fds + 64)) ] || fail "the VMM's descriptors kept growing: $growth"
else
  growth="too short a run to judge growth ($n samples; 4 or more need about 4 minutes)"
fi
ops="$(sed -n 's/^L2-SOAK-DATA: \([a-z]*\): ops=\([0-9]*\).*/\1 \2 data ops/p' "$console" | tr '\n' ',')"
meta="$(sed -n 's/^L2-SOAK-META: \([a-z]*\): rounds=\([0-9]*\) errors=\([0-9]*\)/\1 \2 metadata rounds (\3 errors)/p' "$console" | tr '\n' ',')"
dax="$(sed -n 's/.*virtio-fs "daxfs" DAX: //p' "$console" | tail -n 1)"
ops="${ops%,}" meta="${meta%,}"
echo "SOAK: $minutes min, 2 vCPUs; ${ops//,/, }; ${meta//,/, }; resets $resets; $growth; DAX: ${dax:-none}"
[ "$bad" -eq 0 ] || exit 1
echo "E2E-PASS: $name"
