#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 side of vmm_fs_split: dax=always on daxfs, dax=never on plainfs, each through every
# operation; then daxfs's BARs are moved and the share used again where they ended up.
. /e2e/files/fs_ops.l2lib.sh

# BAR relocation, once daxfs (00:01.0) has been used where the VMM placed it. The driver lets
# go (unbind); config space writes move both memory BARs (registers and DAX window) 16 GiB
# up, with memory decoding off meanwhile, as Linux does; the registers must answer at the new
# place and no longer at the old one (/dev/mem: num_queues, offset 0x12 of the common config
# at the start of BAR 0). remove + rescan makes Linux read the BARs again and assign them
# itself, which moves them once more; the driver binds there and the share must work with
# dax=always: a host file read and written through the moved window (checked on the host).
bar_move() {
  sys=/sys/bus/pci/devices/0000:00:01.0 bad=0
  f() { echo "E2E-FAIL: bar-move: $*"; bad=1; }
  bar() { sed -n "$(($1 + 1))p" "$sys/resource" | cut -d' ' -f1; }
  cfg_read() { od -An -tu"$2" -j"$1" -N"$2" "$sys/config" | tr -d ' '; }
  # cfg_write OFFSET WIDTH VALUE: one little-endian access of WIDTH bytes.
  cfg_write() {
    bytes="" i=0
    while [ $i -lt "$2" ]; do
      bytes="$bytes$(printf '\\%03o' $((($3 >> (8 * i)) & 255)))"
      i=$((i + 1))
    done
    # shellcheck disable=SC2059  # the format is the bytes, as octal escapes
    printf "$bytes" | dd of="$sys/config" bs="$2" seek=$(($1 / $2)) count=1 conv=notrunc 2>/dev/null
  }
  queues_at() { printf '%d' "$(devmem $(($1 + 0x12)) 16)"; }
  bar64() { echo $(($(cfg_read "$1" 4) & ~15 | $(cfg_read $(($1 + 4)) 4) << 32)); }

  old0=$(($(bar 0))) old2=$(($(bar 2)))
  echo 0000:00:01.0 >/sys/bus/pci/drivers/virtio-pci/unbind || f "unbind failed"
  queues=$(queues_at $old0)
  [ "$queues" != 65535 ] || f "no registers at BAR 0 ($old0) before the move"
  new0=$((old0 + 0x400000000)) new2=$((old2 + 0x400000000))
  cmd=$(cfg_read 4 2)
  cfg_write 4 2 $((cmd & ~2))
  cfg_write 16 4 $((new0 & 0xffffffff))
  cfg_write 20 4 $((new0 >> 32))
  cfg_write 24 4 $((new2 & 0xffffffff))
  cfg_write 28 4 $((new2 >> 32))
  cfg_write 4 2 $((cmd | 2))
  if [ "$(bar64 16)" != $new0 ] || [ "$(bar64 24)" != $new2 ]; then
    f "BARs read back $(bar64 16) $(bar64 24)"
  fi
  [ "$(queues_at $new0)" = "$queues" ] || f "registers do not answer at the new BAR 0 ($new0)"
  [ "$(queues_at $old0)" = 65535 ] || f "registers still answer at the old BAR 0 ($old0)"
  echo 1 >"$sys/remove" || f "remove failed"
  echo 1 >/sys/bus/pci/rescan || f "rescan failed"
  [ -e "$sys/driver" ] || f "virtio-pci did not bind again after the rescan"
  end0=$(($(bar 0))) end2=$(($(bar 2)))
  echo "L2-BARS: BAR0 $(printf '0x%x -> 0x%x -> 0x%x' $old0 $new0 $end0)," \
    "BAR2 $(printf '0x%x -> 0x%x -> 0x%x' $old2 $new2 $end2)"
  [ $end2 != $old2 ] || f "the DAX window BAR is back at $old2 after the rescan"
  [ $end0 != $old0 ] || f "the registers BAR is back at $old0 after the rescan"

  mount -t virtiofs daxfs /mnt/dax -o dax=always || { f "mount after the move failed"; return 1; }
  [ "$($FSOPS dax /mnt/dax/moved.txt 2>&1)" = dax ] || f "moved.txt is not DAX"
  [ "$(sha256sum </mnt/dax/moved.txt | cut -d' ' -f1)" = "$(cat /mnt/dax/moved.sha256)" ] ||
    f "moved.txt reads wrong through the moved window"
  $FSOPS mmap-write /mnt/dax/moved.txt 4096 MOVED-MMAP || f "mmap-write moved.txt failed"
  echo "written after the move" >/mnt/dax/g-moved.txt || f "create g-moved.txt failed"
  [ "$(cat /mnt/dax/g-moved.txt)" = "written after the move" ] || f "g-moved.txt reads back wrong"
  umount /mnt/dax || f "umount after the move failed"
  [ $bad = 0 ] && echo "L2-BAR-MOVE: ok"
}

echo "L2-CPUS: $(grep -c ^processor /proc/cpuinfo)"
rc=0
mkdir -p /mnt/dax /mnt/plain
# A share without a DAX window must refuse dax=always.
if mount -t virtiofs plainfs /mnt/plain -o dax=always 2>/dev/null; then
  echo "E2E-FAIL: dax=always mounted plainfs, which has no DAX window"
  umount /mnt/plain
  rc=1
fi
mount -t virtiofs daxfs /mnt/dax -o dax=always || { echo "E2E-FAIL: mount daxfs -o dax=always failed"; exit 1; }
mount -t virtiofs plainfs /mnt/plain -o dax=never || { echo "E2E-FAIL: mount plainfs -o dax=never failed"; exit 1; }
grep virtiofs /proc/mounts
grep -q '^daxfs /mnt/dax virtiofs .*dax=always' /proc/mounts || { echo "E2E-FAIL: /proc/mounts shows no dax=always for daxfs"; rc=1; }
fs_ops_run /mnt/dax dax-always dax || rc=1
umount /mnt/dax || { echo "E2E-FAIL: umount /mnt/dax failed"; rc=1; }
fs_ops_run /mnt/plain dax-never nodax || rc=1
umount /mnt/plain || { echo "E2E-FAIL: umount /mnt/plain failed"; rc=1; }
bar_move || rc=1
exit $rc
