# SPDX-License-Identifier: Apache-2.0
# Host side of the vfsdax-vmm file-system cases: seed a share, boot the VMM, check the share (sourced).
# Pairs with fs_ops.l2lib.sh (what L2 does to the share). Needs E2E_BIN/fsops and
# E2E_BIN/dataexer (--bin).
# Functions print "E2E-FAIL: CASE: why" per problem and set fs_bad=1; the case script ends
# with fs_finish, which prints E2E-PASS or exits 1.
fs_bad=0
fs_fail() { echo "E2E-FAIL: $E2E_NAME: $*"; fs_bad=1; }
fsops="$E2E_BIN/fsops"
[ -x "$fsops" ] || { echo "E2E-FAIL: $E2E_NAME: $fsops is missing (pass --bin fsops)"; exit 1; }
dataexer="$E2E_BIN/dataexer"
# xattrs are served only when the VMM has a share field for it (the FUSE server's default is
# off); fs_xattr_opt is appended to each --fs when it does.
fs_xattr_opt=""
# Read once, then searched: `vfsdax-vmm --help | grep -q` under pipefail fails whenever grep
# ends before the VMM's last write (SIGPIPE), which a longer help text made happen in L1.
vmm_help="$("$E2E_VMM" --help)"
if grep -q 'xattr' <<<"$vmm_help"; then
  fs_xattr_opt=",xattr=on"
  # The cases use trusted.* names where the host allows them (root in L1); the guest may set
  # those only where the operator says so (off by default).
  ! grep -q 'xattr-trusted' <<<"$vmm_help" || fs_xattr_opt+=",xattr-trusted=on"
else
  echo "$E2E_NAME: NOTE: xattrs not tested: vfsdax-vmm --help lists no xattr field for --fs"
fi

# seed_share DIR: the files fs_ops.l2lib.sh expects to find.
seed_share() {
  local d="$1" i ns
  mkdir -p "$d/hostdir"
  echo "hello from the host" >"$d/hello.txt"
  ln -s hello.txt "$d/host-link"
  seq 1 3000 >"$d/mm.bin"
  dd if="$d/mm.bin" of="$d/mm.expect" bs=1 skip=4096 count=10 2>/dev/null
  echo "rename me" >"$d/ren-src.txt"
  echo "delete me" >"$d/del.txt"
  seq 1 2000 >"$d/trunc.txt"
  for ((i = 1; i <= 1000; i++)); do echo "$i" >"$d/hostdir/f$i"; done
  seq 1 1000000 >"$d/big-host.txt"
  sha256sum "$d/big-host.txt" | cut -d' ' -f1 >"$d/big-host.sha256"
  ns=none
  [ -z "$fs_xattr_opt" ] || ns="$("$fsops" xattr-probe "$d")"
  echo "$ns" >"$d/xattr.ns"
  [ "$ns" = none ] || "$fsops" xattr-set "$d/hello.txt" "$ns.e2e_host" host-value
}

# check_share DIR LABEL CONSOLE: after the VMM exited, what L2 did must be on the host.
check_share() {
  local d="$1" label="$2" console="$3" ns got want
  grep -q "^L2-OPS-DONE: $label\$" "$console" || fs_fail "$label: L2 did not finish its operations"
  [ "$(cat "$d/g-new.txt" 2>&1)" = "written by the guest
second line" ] || fs_fail "$label: g-new.txt on the host: '$(cat "$d/g-new.txt" 2>&1)'"
  got="$(dd if="$d/mm.bin" bs=1 skip=5000 count=10 2>/dev/null)"
  [ "$got" = MMAP-GUEST ] || fs_fail "$label: mm.bin@5000 on the host is '$got', want MMAP-GUEST"
  [ "$(head -c 5000 "$d/mm.bin" | sha256sum)" = "$(seq 1 3000 | head -c 5000 | sha256sum)" ] ||
    fs_fail "$label: mm.bin changed before offset 5000"
  [ "$(stat -c %s "$d/mm.bin")" = "$(seq 1 3000 | wc -c)" ] || fs_fail "$label: mm.bin changed size"
  [ "$(stat -c %s "$d/g-mm.bin" 2>&1)" = 8192 ] || fs_fail "$label: g-mm.bin is not 8192 bytes"
  got="$(dd if="$d/g-mm.bin" bs=1 skip=4100 count=14 2>/dev/null)"
  [ "$got" = GUEST-MMAP-NEW ] || fs_fail "$label: g-mm.bin@4100 on the host is '$got'"
  [ ! -e "$d/ren-src.txt" ] || fs_fail "$label: ren-src.txt still on the host"
  [ "$(cat "$d/ren-dst.txt" 2>&1)" = "rename me" ] || fs_fail "$label: ren-dst.txt missing or wrong"
  [ "$(cat "$d/g-ren-b" 2>&1)" = moved ] && [ ! -e "$d/g-ren-a" ] || fs_fail "$label: g-ren-a -> g-ren-b not on the host"
  [ ! -e "$d/del.txt" ] || fs_fail "$label: del.txt still on the host"
  [ ! -e "$d/g-tmp" ] || fs_fail "$label: g-tmp still on the host"
  [ -L "$d/g-sym" ] && [ "$(readlink "$d/g-sym")" = g-new.txt ] || fs_fail "$label: symlink g-sym wrong on the host"
  [ "$(stat -c %h "$d/g-new.txt" 2>&1)" = 2 ] || fs_fail "$label: g-new.txt does not have 2 links on the host"
  [ "$(stat -c %i "$d/g-new.txt" 2>&1)" = "$(stat -c %i "$d/g-hard" 2>&1)" ] || fs_fail "$label: g-hard is not g-new.txt's inode"
  ns="$(cat "$d/xattr.ns")"
  if [ "$ns" != none ]; then
    got="$("$fsops" xattr-get "$d/g-new.txt" "$ns.e2e_guest" 2>&1)"
    [ "$got" = guest-value ] || fs_fail "$label: $ns.e2e_guest of g-new.txt on the host: '$got'"
  else
    echo "$E2E_NAME: NOTE: $label: xattrs not checked (no VMM field, or the host file system stores none)"
  fi
  [ "$(stat -c %s "$d/trunc.txt")" = 100 ] || fs_fail "$label: trunc.txt is $(stat -c %s "$d/trunc.txt") bytes, want 100"
  [ "$(cat "$d/trunc.txt")" = "$(seq 1 2000 | head -c 100)" ] || fs_fail "$label: trunc.txt content changed"
  [ "$(stat -c %s "$d/g-grow" 2>&1)" = 3000000 ] || fs_fail "$label: g-grow is not 3000000 bytes"
  [ "$(cat "$d/g-sync.txt" 2>&1)" = "synced by the guest" ] || fs_fail "$label: g-sync.txt missing or wrong"
  got="$(ls "$d/g-dir" 2>/dev/null | wc -l)"
  [ "$got" = 1000 ] || fs_fail "$label: g-dir has $got entries on the host, want 1000"
  [ -e "$d/g-dir/e1" ] && [ -e "$d/g-dir/e1000" ] || fs_fail "$label: g-dir lacks e1 or e1000"
  [ ! -e "$d/g-rm" ] || fs_fail "$label: g-rm, which L2 removed with rm -rf, is on the host"
  got="$(sha256sum "$d/g-big.txt" 2>&1 | cut -d' ' -f1)"
  [ "$got" = "$(cat "$d/big-host.sha256")" ] || fs_fail "$label: g-big.txt on the host has sha256 $got"
  [ "$(sha256sum "$d/big-host.txt" | cut -d' ' -f1)" = "$(cat "$d/big-host.sha256")" ] ||
    fs_fail "$label: big-host.txt changed on the host"
  # The data exerciser's file: on the host it must hash to what the guest's model ended with.
  want="$(sed -n "s/^L2-DATAEXER: $label: ops=[0-9]* \(size=[0-9]* hash=[0-9a-f]*\).*/\1/p" "$console")"
  if [ -z "$want" ]; then
    fs_fail "$label: L2 printed no dataexer result (L2-DATAEXER line)"
  elif [ ! -x "$dataexer" ]; then
    fs_fail "$label: $dataexer is missing (pass --bin dataexer)"
  else
    got="$("$dataexer" hash "$d/g-dataexer.bin" 2>&1)"
    [ "$got" = "$want" ] ||
      fs_fail "$label: g-dataexer.bin on the host has $got, the guest's model $want"
  fi
}

# watch_vmm FILE: once FILE (the VMM's output) has not grown for 90 s, or for 30 s after the
# VMM warned that L2's interrupts are not delivered, records 3 s of KVM's trace events
# (nested mode: L1's kernel, which runs L2 for the VMM) and prints a count per event and the
# last of them, so a stalled L2 says what KVM under it does. In the second case L2 cannot go
# on: the VMM is stopped now (SIGTERM to its `timeout`, a child of this shell) rather than at
# its timeout, and run(1) counts the run as the rig's failure. The tracing part does nothing
# where tracefs is not there or not writable (direct mode as a user).
watch_vmm() {
  local raw="$1" tr=/sys/kernel/tracing last=-1 still=0 size undelivered
  # Run in the background with the host script's errexit and pipefail: a grep that finds no
  # trace line would end it before it stopped the VMM.
  set +e +o pipefail
  while sleep 5; do
    size="$(stat -c %s "$raw" 2>/dev/null || echo 0)"
    if [ "$size" = "$last" ]; then still=$((still + 5)); else still=0 last="$size"; fi
    [ "$still" -ge 30 ] || continue
    # The whole console is searched only once the VMM has gone quiet.
    undelivered=false
    ! grep -q 'requested interrupts were deliverable' "$raw" || undelivered=true
    [ "$still" -ge 90 ] || $undelivered || continue
    echo "E2E-NOTE: $E2E_NAME: the VMM has printed nothing for ${still}s"
    if { [ -e "$tr/tracing_on" ] || mount -t tracefs nodev "$tr" 2>/dev/null; } &&
      [ -w "$tr/tracing_on" ] && [ -d "$tr/events/kvm" ]; then
      echo 8192 >"$tr/buffer_size_kb"
      echo >"$tr/trace"
      echo 1 >"$tr/events/kvm/enable"
      sleep 3
      echo 0 >"$tr/events/kvm/enable"
      echo "E2E-NOTE: $E2E_NAME: KVM's trace events in 3 s, by count, then the last ones:"
      grep -v '^#' "$tr/trace" | awk '{ for (i = 1; i <= NF; ++i) if ($i ~ /^kvm_[a-z_]*:$/) { n[$i]++; break } }
        END { for (e in n) printf "L1-KVM-TRACE: %8d %s\n", n[e], e }' | sort -k2,2nr
      grep -v '^#' "$tr/trace" | tail -n 120 | sed 's/^/L1-KVM-TRACE: /'
    fi
    if $undelivered; then
      echo "E2E-NOTE: $E2E_NAME: L2's interrupts are not delivered: stopping the VMM"
      # L1's busybox has no pkill: the `timeout` whose parent is this shell, by /proc.
      local stat pid comm state ppid
      for stat in /proc/[0-9]*/stat; do
        read -r pid comm state ppid _ <"$stat" 2>/dev/null || continue
        [ "$ppid" = "$$" ] && [ "$comm" = "(timeout)" ] && kill "$pid"  # it passes SIGTERM on
      done
    fi
    return 0
  done
}

# run_vmm CONSOLE ARGS...: the VMM, bounded, console to stdout and CONSOLE; must exit 0.
run_vmm() {
  local console="$1" rc t0 t1 tracer
  shift
  # The passthrough server keeps one O_PATH fd per inode the guest knows, and the cases
  # make ~2000 per share: lift the soft fd limit to the hard one, as a launcher would
  # (vfsdax-vmm raises only the soft limit, up to the hard one).
  ulimit -Sn "$(ulimit -Hn)"
  echo "$E2E_NAME: fd limit $(ulimit -Sn)"
  t0=${EPOCHREALTIME/./}
  : >"$console.raw"
  watch_vmm "$console.raw" &
  tracer=$!
  set +e
  timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
    --cmdline "console=ttyS0 reboot=k panic=-1" "$@" </dev/null 2>&1 | tee "$console.raw"
  rc=${PIPESTATUS[0]}
  kill "$tracer" 2>/dev/null
  wait "$tracer" 2>/dev/null
  set -e
  # The guest's serial console ends lines with \r\n.
  tr -d '\r' <"$console.raw" >"$console"
  t1=${EPOCHREALTIME/./}
  echo "$E2E_NAME: vfsdax-vmm ran $(((t1 - t0) / 1000)) ms, exit $rc"
  [ "$rc" -ne 124 ] || fs_fail "vfsdax-vmm did not exit within ${E2E_VMM_TIMEOUT}s"
  [ "$rc" -eq 0 ] || fs_fail "vfsdax-vmm exited with $rc"
  grep -q '^E2E-L2-DONE: rc=0' "$console" || fs_fail "the L2 test did not finish with rc=0"
  # A ring the device found broken: Linux ignores NEEDS_RESET, only the VMM's log tells.
  ! grep -q 'device needs a reset' "$console" ||
    fs_fail "the VMM set NEEDS_RESET: $(grep 'device needs a reset' "$console" | head -n1)"
}

# check_dax_used CONSOLE TAG: the VMM's exit statistics show the guest set up DAX mappings.
check_dax_used() {
  local setups
  setups="$(sed -n "s/.*virtio-fs \"$2\" DAX: \([0-9]*\) setups.*/\1/p" "$1" | tail -n 1)"
  [ -n "$setups" ] || fs_fail "$2: the VMM printed no DAX statistics"
  [ "${setups:-0}" -gt 0 ] || fs_fail "$2: the VMM's DAX statistics show no SETUPMAPPING"
  echo "$E2E_NAME: $2: $setups DAX setups"
}

# check_pci_irq CONSOLE: Linux found slot 1's INTA# in the MP table: I/O APIC pin 16.
check_pci_irq() {
  grep -Eq '(pci|virtio-pci) 0000:00:01.0: PCI->APIC IRQ transform: INT A -> IRQ 16$' "$1" ||
    fs_fail "L2 did not route 00:01.0's INTA# to IRQ 16 through the MP table"
  ! grep -q "can't find IRQ for PCI INT" "$1" || fs_fail "L2: $(grep -m1 "can't find IRQ" "$1")"
}

fs_finish() {
  [ "$fs_bad" -eq 0 ] || exit 1
  echo "E2E-PASS: $E2E_NAME"
}
