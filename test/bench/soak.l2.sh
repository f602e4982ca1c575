#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# soak, L2 side: N minutes of mixed file-system load on a DAX share and a plain share, 2 vCPUs.
# The minutes come from the kernel command line (soak.minutes=N, the host script sets it).
# On each share, side by side: the data exerciser (/e2e/files/dataexer --duration: random I/O
# and mmap on one file, every read checked against its model, truncations with pauses so the
# VMM's scans run between a shrink and a regrowth) and a metadata churn (create, write,
# rename, hard link, symlink, chmod, chown to another user, list, unlink in one directory).
# Prints "L2-SOAK-DATA: LABEL: ops=N size=S hash=H" (the host compares the file's hash),
# "L2-SOAK-META: LABEL: rounds=N errors=E" and, at the end, "E2E-PASS: soak_l2" when nothing
# failed.
DATAEXER=/e2e/files/dataexer
minutes="$(sed -n 's/.*soak\.minutes=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)"
[ -n "$minutes" ] || minutes=10
seconds=$((minutes * 60))
rc=0
f() {
  echo "E2E-FAIL: soak L2: $*"
  rc=1
}
mkdir -p /mnt/dax /mnt/plain
mount -t virtiofs daxfs /mnt/dax -o dax=always || f "mount daxfs -o dax=always failed"
mount -t virtiofs plainfs /mnt/plain -o dax=never || f "mount plainfs -o dax=never failed"
[ $rc -eq 0 ] || exit 1
echo "L2-SOAK: $minutes minutes on 2 shares, $(grep -c ^processor /proc/cpuinfo) CPUs"

# churn DIR LABEL: metadata operations in rounds until the time is up; one line at the end.
churn() {
  d="$1/churn" label="$2" end=$(($(cut -d. -f1 /proc/uptime) + seconds))
  rounds=0 errors=0
  mkdir -p "$d" || errors=$((errors + 1))
  while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    r=$rounds
    {
      for i in 1 2 3 4 5 6 7 8; do echo "round $r file $i" >"$d/f$i" || exit 1; done
      mv "$d/f1" "$d/g1" && ln "$d/f2" "$d/h2" && ln -s f3 "$d/s3" || exit 1
      chmod 600 "$d/f4" && chown 1000:1000 "$d/f5" && chmod 755 "$d/f6" || exit 1
      [ "$(cat "$d/g1")" = "round $r file 1" ] && [ "$(cat "$d/h2")" = "round $r file 2" ] || exit 1
      [ "$(cat "$d/s3")" = "round $r file 3" ] || exit 1
      [ "$(ls "$d" | wc -l)" = 10 ] || exit 1
      rm -f "$d"/* || exit 1
    } 2>/dev/null || {
      errors=$((errors + 1))
      echo "soak L2: $label: churn round $r failed; the directory holds: $(ls -l "$d" 2>&1 | tr '\n' ' ')"
      rm -f "$d"/* 2>/dev/null
    }
    rounds=$((rounds + 1))
  done
  echo "L2-SOAK-META: $label: rounds=$rounds errors=$errors"
}

# exercise MOUNT LABEL SEED: the data exerciser for the whole time; one line at the end.
exercise() {
  if out="$($DATAEXER run "$1/soak-data.bin" --seed "$3" --duration "$seconds" \
    --max-size 6M 2>&1)"; then
    echo "L2-SOAK-DATA: $2: $(echo "$out" | sed -n 's/^DATAEXER: //p')"
  else
    echo "E2E-FAIL: soak L2: $2: the data exerciser failed:"
    echo "$out" | tail -n 30
  fi
}

exercise /mnt/dax dax 31 >/tmp/dax-data.out &
exercise /mnt/plain plain 32 >/tmp/plain-data.out &
churn /mnt/dax dax >/tmp/dax-meta.out &
churn /mnt/plain plain >/tmp/plain-meta.out &
wait
cat /tmp/dax-data.out /tmp/plain-data.out /tmp/dax-meta.out /tmp/plain-meta.out
grep -q '^E2E-FAIL' /tmp/*-data.out && rc=1
grep -q 'errors=[1-9]' /tmp/*-meta.out && f "metadata churn errors (above)"
sync
umount /mnt/dax || f "umount /mnt/dax failed"
umount /mnt/plain || f "umount /mnt/plain failed"
[ $rc -eq 0 ] && echo "E2E-PASS: soak_l2"
exit $rc
