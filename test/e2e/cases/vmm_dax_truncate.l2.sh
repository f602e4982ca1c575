#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# L2 side of vmm_dax_truncate: DAX-map a host file, let the host shrink it, touch past the new end, go on.
# Needs /e2e/files/vmm_dax_truncate_guest (--l2-file). The host script shrinks big.bin to 100
# bytes when it sees L2-DAX-MAPPED and then creates truncated.flag in the share.
m=/mnt
rc=0
f() { echo "E2E-FAIL: vmm_dax_truncate: $*"; rc=1; }
mount -t virtiofs daxfs $m -o dax=always || { echo "E2E-FAIL: mount daxfs -o dax=always failed"; exit 1; }
grep -q '^daxfs /mnt virtiofs .*dax=always' /proc/mounts || f "/proc/mounts shows no dax=always"

# A small file the guest reads through the window before the truncation and appends to after
# it: its mapping reaches past its end, and must still show the file once it grows.
echo "first line" >$m/g-small.txt || f "create g-small.txt failed"
[ "$(cat $m/g-small.txt)" = "first line" ] || f "g-small.txt reads '$(cat $m/g-small.txt)'"

/e2e/files/vmm_dax_truncate_guest $m/big.bin $m/truncated.flag 100 || f "the mapping of big.bin misbehaved (see above)"

# The guest kernel and the VMM are still there: more I/O on the same mount. The guest may
# still hold big.bin's old size in its attribute cache (cache=auto: 1 s), so give it time.
i=0
while [ "$(stat -c %s $m/big.bin)" != 100 ] && [ $i -lt 10 ]; do sleep 1; i=$((i + 1)); done
[ "$(stat -c %s $m/big.bin)" = 100 ] || f "big.bin is $(stat -c %s $m/big.bin) bytes in the guest, want 100"
[ "$(cat $m/big.bin)" = "$(seq 1 1000000 | head -c 100)" ] || f "big.bin's first 100 bytes changed"
echo "second line" >>$m/g-small.txt || f "append to g-small.txt failed"
[ "$(cat $m/g-small.txt)" = "first line
second line" ] || f "g-small.txt reads '$(cat $m/g-small.txt)' after the append"
[ "$(cat $m/other.txt)" = "untouched by the truncation" ] || f "other.txt reads '$(cat $m/other.txt)'"
seq 1 200000 >$m/g-after.txt || f "writing g-after.txt failed"
[ "$(sha256sum <$m/g-after.txt)" = "$(seq 1 200000 | sha256sum)" ] || f "g-after.txt reads back wrong"
# The host extends big.bin back to its old contents: through the same window ranges (mapped
# back by the VMM's scan within a second), the guest reads them all.
echo "L2-DAX-GROW: please"
i=0
while [ ! -e $m/grown.flag ] && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
[ -e $m/grown.flag ] || f "the host never extended big.bin (no grown.flag)"
want="$(seq 1 1000000 | wc -c)"
i=0
while [ "$(stat -c %s $m/big.bin)" != "$want" ] && [ $i -lt 10 ]; do sleep 1; i=$((i + 1)); done
sleep 2 # one scan of the VMM's, at least
[ "$(sha256sum <$m/big.bin)" = "$(seq 1 1000000 | sha256sum)" ] ||
  f "big.bin does not read back as the host extended it ($(stat -c %s $m/big.bin) bytes)"
sync
umount $m || f "umount failed"
[ $rc -eq 0 ] && echo "E2E-PASS: vmm_dax_truncate_l2"
exit $rc
