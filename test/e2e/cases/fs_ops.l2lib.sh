# SPDX-License-Identifier: Apache-2.0
# L2 side of the vfsdax-vmm file-system cases: every operation on one virtio-fs mount (sourced).
# Runs under busybox sh in L2; needs /e2e/files/fsops (test/e2e/fsops.cpp, static) and
# /e2e/files/dataexer (test/e2e/dataexer.cpp, static). The host side (fs_share.lib.sh) seeds
# the share before the boot and checks what this leaves behind.
# Usage: fs_ops_run MOUNTPOINT LABEL EXPECT_DAX(dax|nodax); prints "E2E-FAIL: LABEL: why" per
# problem and "L2-OPS-DONE: LABEL" when all held; returns non-zero on any failure.
FSOPS=/e2e/files/fsops
DATAEXER=/e2e/files/dataexer
# The data exerciser's fixed run: seed, operations, largest file (past the 4M DAX window of the
# vmm_fs_* shares), and the pauses after truncate-downs (DAX mounts only; the operations are
# the same either way).
DX_SEED=20 DX_OPS=300 DX_MAX_SIZE=6M DX_PAUSE_MS=1500 DX_PAUSE_TOTAL=9

fs_ops_run() {
  m="$1" label="$2" want_dax="$3" bad=0
  f() { echo "E2E-FAIL: $label: $*"; bad=1; }
  # Progress on the console: when a run hangs, the last step names the operation, and a step
  # still running after 90 s puts on the console what a hang needs to be told apart: the tasks
  # blocked in the kernel and where (sysrq w: a FUSE request never answered, or the DAX range
  # reclaim), and L2's interrupt counts. Each step replaces the last one's watchdog.
  step() {
    echo "L2-STEP: $label: $*"
    stop_watchdog
    (
      sleep 90
      echo "L2-STUCK: $label: '$*' still running after 90 s; blocked tasks and interrupts follow"
      grep -E 'virtio|IO-APIC' /proc/interrupts
      echo w >/proc/sysrq-trigger
    ) &
    watchdog=$!
  }
  stop_watchdog() { [ -z "${watchdog:-}" ] || kill "$watchdog" 2>/dev/null; watchdog=""; }
  t0=$(cut -d' ' -f1 /proc/uptime)

  step "dax state"
  # The mount's DAX state, per file (statx STATX_ATTR_DAX) and in /proc/mounts.
  got="$($FSOPS dax "$m/hello.txt" 2>&1)"
  [ "$got" = "$want_dax" ] || f "DAX state of hello.txt is '$got', want '$want_dax'"
  step "read"
  # Reading a host file (through the DAX window when it is on).
  [ "$(cat "$m/hello.txt")" = "hello from the host" ] || f "hello.txt reads '$(cat "$m/hello.txt")'"

  step "create and append"
  # create, write, append, read back
  echo "written by the guest" >"$m/g-new.txt" || f "create g-new.txt failed"
  echo "second line" >>"$m/g-new.txt" || f "append to g-new.txt failed"
  [ "$(cat "$m/g-new.txt")" = "written by the guest
second line" ] || f "g-new.txt reads back '$(cat "$m/g-new.txt")'"

  step "mmap"
  # mmap: read a host file, write into it, and write a new guest file.
  want="$(cat "$m/mm.expect")"
  got="$($FSOPS mmap-read "$m/mm.bin" 4096 10)" || f "mmap-read mm.bin failed"
  [ "$got" = "$want" ] || f "mmap-read mm.bin@4096 is '$got', want '$want'"
  $FSOPS mmap-write "$m/mm.bin" 5000 "MMAP-GUEST" || f "mmap-write mm.bin failed"
  got="$(dd if="$m/mm.bin" bs=1 skip=5000 count=10 2>/dev/null)"
  [ "$got" = "MMAP-GUEST" ] || f "read(2) after mmap-write of mm.bin gives '$got'"
  truncate -s 8192 "$m/g-mm.bin" || f "truncate -s 8192 g-mm.bin failed"
  $FSOPS mmap-write "$m/g-mm.bin" 4100 "GUEST-MMAP-NEW" || f "mmap-write g-mm.bin failed"
  got="$($FSOPS mmap-read "$m/g-mm.bin" 4100 14)" || f "mmap-read g-mm.bin failed"
  [ "$got" = "GUEST-MMAP-NEW" ] || f "mmap-read of g-mm.bin gives '$got'"

  step "rename and unlink"
  # rename (a host file and a guest file), unlink (both kinds)
  mv "$m/ren-src.txt" "$m/ren-dst.txt" || f "rename ren-src.txt failed"
  [ ! -e "$m/ren-src.txt" ] || f "ren-src.txt still exists after rename"
  [ "$(cat "$m/ren-dst.txt")" = "rename me" ] || f "ren-dst.txt reads '$(cat "$m/ren-dst.txt")'"
  echo moved >"$m/g-ren-a" && mv "$m/g-ren-a" "$m/g-ren-b" || f "rename g-ren-a failed"
  rm "$m/del.txt" || f "unlink del.txt failed"
  [ ! -e "$m/del.txt" ] || f "del.txt still exists after unlink"
  echo tmp >"$m/g-tmp" && rm "$m/g-tmp" || f "create+unlink g-tmp failed"
  [ ! -e "$m/g-tmp" ] || f "g-tmp still exists after unlink"

  step "symlinks"
  # symlinks: the guest's own and one the host made
  ln -s g-new.txt "$m/g-sym" || f "symlink g-sym failed"
  [ "$(readlink "$m/g-sym")" = g-new.txt ] || f "readlink g-sym is '$(readlink "$m/g-sym")'"
  [ "$(head -n1 "$m/g-sym")" = "written by the guest" ] || f "reading through g-sym failed"
  [ "$(cat "$m/host-link")" = "hello from the host" ] || f "reading through host-link failed"

  step "hard link"
  # hard link
  ln "$m/g-new.txt" "$m/g-hard" || f "hard link g-hard failed"
  [ "$(stat -c %h "$m/g-new.txt")" = 2 ] || f "g-new.txt has $(stat -c %h "$m/g-new.txt") links, want 2"
  [ "$(stat -c %i "$m/g-new.txt")" = "$(stat -c %i "$m/g-hard")" ] || f "g-hard is not the same inode"

  step "xattrs"
  # xattrs, in the namespace the host's file system stores (the host wrote it to xattr.ns)
  ns="$(cat "$m/xattr.ns")"
  if [ "$ns" = none ]; then
    echo "$label: NOTE: xattrs skipped: the host side has none to offer (see its NOTE)"
  else
    got="$($FSOPS xattr-get "$m/hello.txt" "$ns.e2e_host")" || f "getxattr $ns.e2e_host failed"
    [ "$got" = host-value ] || f "$ns.e2e_host of hello.txt is '$got'"
    $FSOPS xattr-set "$m/g-new.txt" "$ns.e2e_guest" guest-value || f "setxattr $ns.e2e_guest failed"
    got="$($FSOPS xattr-get "$m/g-new.txt" "$ns.e2e_guest")" || f "getxattr $ns.e2e_guest failed"
    [ "$got" = guest-value ] || f "$ns.e2e_guest reads back '$got'"
  fi

  step "truncate"
  # truncate: shrink a host file, grow a guest file
  truncate -s 100 "$m/trunc.txt" || f "truncate -s 100 trunc.txt failed"
  [ "$(stat -c %s "$m/trunc.txt")" = 100 ] || f "trunc.txt is $(stat -c %s "$m/trunc.txt") bytes after truncate"
  truncate -s 3000000 "$m/g-grow" || f "truncate -s 3000000 g-grow failed"

  step "fsync"
  # fsync(2) and sync
  echo "synced by the guest" >"$m/g-sync.txt" || f "create g-sync.txt failed"
  $FSOPS fsync "$m/g-sync.txt" || f "fsync g-sync.txt failed"
  sync || f "sync failed"

  step "1000 entries"
  # a directory of 1000 entries both ways
  n="$(ls "$m/hostdir" | wc -l)"
  [ "$n" = 1000 ] || f "hostdir lists $n entries, want 1000"
  [ "$(cat "$m/hostdir/f777")" = 777 ] || f "hostdir/f777 reads '$(cat "$m/hostdir/f777")'"
  mkdir "$m/g-dir" || f "mkdir g-dir failed"
  i=1
  while [ $i -le 1000 ]; do
    : >"$m/g-dir/e$i" || { f "create g-dir/e$i failed"; break; }
    i=$((i + 1))
  done
  n="$(ls "$m/g-dir" | wc -l)"
  [ "$n" = 1000 ] || f "g-dir lists $n entries, want 1000"
  # rm -rf lists a batch, unlinks it and lists on: where the host's d_off is a position (L1's
  # tmpfs), resuming by seeking skipped live entries ("Directory not empty").
  mkdir "$m/g-rm" || f "mkdir g-rm failed"
  i=1
  while [ $i -le 400 ]; do
    : >"$m/g-rm/r$i" || { f "create g-rm/r$i failed"; break; }
    i=$((i + 1))
  done
  rm -rf "$m/g-rm" || f "rm -rf g-rm failed"
  [ ! -e "$m/g-rm" ] || f "g-rm is still there after rm -rf"

  step "files larger than the window"
  # files larger than the DAX window, read and written
  got="$(sha256sum "$m/big-host.txt" | cut -d' ' -f1)"
  [ "$got" = "$(cat "$m/big-host.sha256")" ] || f "big-host.txt reads with sha256 $got, the host's is $(cat "$m/big-host.sha256")"
  seq 1 1000000 >"$m/g-big.txt" || f "writing g-big.txt failed"
  got="$(sha256sum "$m/g-big.txt" | cut -d' ' -f1)"
  [ "$got" = "$(cat "$m/big-host.sha256")" ] || f "g-big.txt reads back with sha256 $got"

  step "data exerciser"
  # dataexer (issue #20): seeded random I/O on one file, every read checked against a model,
  # mmap through the window, truncate down + pause > 1 s (the VMM's truncation scan) + regrowth
  # + writes into the regrown range. One line for the host, which compares the file's hash with
  # it; then, with the guest's caches dropped (DAX: the inode and its window ranges), L2 reads
  # the file back itself.
  dx_pause=0 dx_t0=$(cut -d' ' -f1 /proc/uptime)
  [ "$want_dax" = nodax ] || dx_pause=$DX_PAUSE_TOTAL
  if out="$($DATAEXER run "$m/g-dataexer.bin" --seed $DX_SEED --ops $DX_OPS \
    --max-size $DX_MAX_SIZE --pause-ms $DX_PAUSE_MS --pause-total $dx_pause 2>&1)"; then
    notes="$(echo "$out" | sed -n 's/^dataexer: NOTE: .*; \(.*\)$/\1/p' | tr '\n' ' ')"
    res="$(echo "$out" | sed -n 's/^DATAEXER: //p')"
    # The kernel's "drop_caches: 3" note (KERN_INFO) could land inside a console line.
    lvl="$(cut -f1 /proc/sys/kernel/printk)"
    echo 4 >/proc/sys/kernel/printk
    echo 3 >/proc/sys/vm/drop_caches
    echo "$lvl" >/proc/sys/kernel/printk
    got="$($DATAEXER hash "$m/g-dataexer.bin" 2>&1)"
    echo "L2-DATAEXER: $label: $res seed=$DX_SEED uptime=$dx_t0-$(cut -d' ' -f1 /proc/uptime)${notes:+ (${notes% })}"
    [ "$got" = "${res#ops=* }" ] ||
      f "dataexer: g-dataexer.bin reads back as '$got' after drop_caches, the run ended with '${res#ops=* }'"
  else
    f "dataexer --seed $DX_SEED --ops $DX_OPS --max-size $DX_MAX_SIZE failed:"
    echo "$out"
  fi

  sync
  stop_watchdog
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "$label: operations took $t0 -> $t1 s of L2 uptime"
  [ "$bad" -eq 0 ] || return 1
  echo "L2-OPS-DONE: $label"
}
