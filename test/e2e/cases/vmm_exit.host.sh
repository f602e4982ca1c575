#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vfsdax-vmm ends with status 0 when the guest resets the machine (reboot=k) and on SIGINT.
# The first boot loads the uncompressed vmlinux (E2E_VMLINUX), the second the bzImage.
set -euo pipefail
bad=0
fail() {
  echo "E2E-FAIL: vmm_exit: $*"
  bad=1
}
share="$E2E_WORK/share"
mkdir -p "$share"
vmm_args=(--initrd "$E2E_INITRD" --cpus 1 --memory 256M --fs "tag=share,dir=$share")

# 1. The guest's /init ends with `reboot -f`: Linux resets through the i8042 (reboot=k).
log="$E2E_WORK/reboot.log"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_VMLINUX" "${vmm_args[@]}" \
  --cmdline "console=ttyS0 reboot=k panic=-1 e2e.reboot" </dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "after the guest's reboot, vfsdax-vmm exited with $rc, want 0"
grep -q '^E2E-L2-DONE: rc=0' "$log" || fail "reboot boot: the L2 test did not finish"
grep -q 'reset the machine (i8042)' "$log" || fail "reboot boot: the VMM did not report an i8042 reset"
grep -q 'kernel: uncompressed vmlinux, entered at 0x' "$log" ||
  fail "reboot boot: the VMM did not report loading $E2E_VMLINUX as an uncompressed vmlinux"
# The device's state is a report for a stop from outside or an error, not for a clean end.
! grep -q 'virtio-fs "share": device status' "$log" ||
  fail "reboot boot: the VMM reported the device's state after a clean end"

# 2. SIGINT while the guest waits. Started the way a script starts a background job; the
# VMM is bounded by polling, since a timeout wrapper would stand between the signal and it.
log="$E2E_WORK/sigint.log"
"$E2E_VMM" --kernel "$E2E_KERNEL" "${vmm_args[@]}" \
  --cmdline "console=ttyS0 reboot=k panic=-1 e2e.wait" </dev/null >"$log" 2>&1 &
pid=$!
deadline=$((SECONDS + E2E_VMM_TIMEOUT))
until grep -q '^L2-WAITING' "$log" || ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do
  sleep 0.5
done
if grep -q '^L2-WAITING' "$log"; then
  echo "vmm_exit: L2 is waiting; sending SIGINT to vfsdax-vmm ($pid)"
  kill -INT "$pid"
  deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
else
  fail "sigint boot: the guest never printed L2-WAITING"
fi
if kill -0 "$pid" 2>/dev/null; then
  fail "vfsdax-vmm was still running 60 s after SIGINT (or never reached L2-WAITING)"
  kill -KILL "$pid"
fi
set +e
wait "$pid"
rc=$?
set -e
tr -d '\r' <"$log"
[ "$rc" -eq 0 ] || fail "after SIGINT, vfsdax-vmm exited with $rc, want 0"
grep -q 'stopped by Interrupt' "$log" || fail "sigint boot: the VMM did not report being stopped by SIGINT"
grep -q 'kernel: bzImage, entered at 0x100200' "$log" ||
  fail "sigint boot: the VMM did not report loading $E2E_KERNEL as a bzImage"
# Stopped from outside: the VMM reports each vCPU's interrupts, the device (the driver bound
# it: DRIVER_OK) and its rings, for the case where the guest was stuck.
grep -q 'virtio-fs "share": device status 0x0f, ISR' "$log" ||
  fail "sigint boot: the VMM did not report the device's status and interrupts"
grep -q 'virtio-fs "share": queue 1: split ring of' "$log" ||
  fail "sigint boot: the VMM did not report the request queue's ring"
grep -q 'vCPU 0: .*LAPIC TPR' "$log" ||
  fail "sigint boot: the VMM did not report vCPU 0's interrupt state"

[ "$bad" -eq 0 ] || exit 1
echo "E2E-PASS: vmm_exit"
