#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rig baseline: QEMU-KVM (not vfsdax-vmm) boots the L2 kernel and initramfs on this /dev/kvm.
# When a vfsdax-vmm case fails and this one passes, the fault is in the VMM, not the rig.
set -euo pipefail
fail() { echo "E2E-FAIL: l2_qemu_kvm: $*"; exit 1; }
qemu="$E2E_BIN/qemu-system-x86_64"
[ -x "$qemu" ] || fail "$qemu is missing (pass --bin /usr/bin/qemu-system-x86_64)"
[ -f "$E2E_FILES/bios-256k.bin" ] || fail "bios-256k.bin is missing (pass --file)"
console="$E2E_WORK/l2-console.log"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$qemu" -accel kvm -cpu host -m 512 -smp 1 -nodefaults \
  -L "$E2E_FILES" -kernel "$E2E_KERNEL" -initrd "$E2E_INITRD" \
  -append "console=ttyS0 quiet panic=-1" -device virtio-rng-pci \
  -serial stdio -display none -no-reboot </dev/null 2>&1 | tee "$console"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "QEMU-KVM exited with $rc"
grep -q '^E2E-L2-DONE: rc=0' "$console" || fail "the L2 guest did not finish its test"
echo "E2E-PASS: l2_qemu_kvm"
