#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rig baseline: QEMU-KVM (not vfsdax-vmm) boots the L2 kernel and initramfs on this /dev/kvm.
# When a vfsdax-vmm case fails and this one's QEMU half passes, the fault is in the VMM, not
# the rig.
# Then the clean-log check (issue #15, item 0): vfsdax-vmm boots the same kernel, initramfs
# and command line with the same vCPU count and memory, and every kernel complaint in its
# console that QEMU-KVM's console lacks fails the case, printed.
set -euo pipefail
bad=0
fail() {
  echo "E2E-FAIL: l2_qemu_kvm: $*"
  bad=1
}
qemu="$E2E_BIN/qemu-system-x86_64"
[ -x "$qemu" ] || { fail "$qemu is missing (pass --bin /usr/bin/qemu-system-x86_64)"; exit 1; }
[ -f "$E2E_FILES/bios-256k.bin" ] || { fail "bios-256k.bin is missing (pass --file)"; exit 1; }
# No `quiet`: WARN() splats and most complaints are KERN_WARNING or below, which quiet hides.
# Two vCPUs: TSC synchronisation and the SMP bring-up only show with more than one.
cmdline="console=ttyS0 panic=-1"
cpus=2
memory_mib=512

qemu_console="$E2E_WORK/l2-console.log"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$qemu" -accel kvm -cpu host -m "$memory_mib" -smp "$cpus" \
  -nodefaults -L "$E2E_FILES" -kernel "$E2E_KERNEL" -initrd "$E2E_INITRD" \
  -append "$cmdline" -device virtio-rng-pci \
  -serial stdio -display none -no-reboot </dev/null 2>&1 | tee "$qemu_console"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "QEMU-KVM exited with $rc"
grep -q '^E2E-L2-DONE: rc=0' "$qemu_console" || fail "the L2 guest did not finish its test under QEMU-KVM"
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "l2_qemu_kvm: the QEMU-KVM baseline boot passed"

[ -n "${E2E_VMM:-}" ] || { fail "no vfsdax-vmm to compare (pass --vmm)"; exit 1; }
share="$E2E_WORK/share"
mkdir -p "$share"
ours_console="$E2E_WORK/l2-console-vfsdax.log"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cpus "$cpus" --memory "${memory_mib}M" --fs "tag=share,dir=$share" \
  --cmdline "$cmdline" </dev/null 2>&1 | tee "$ours_console"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "vfsdax-vmm exited with $rc"
grep -q '^E2E-L2-DONE: rc=0' "$ours_console" || fail "the L2 guest did not finish its test under vfsdax-vmm"

# The kernel's complaints in a console, up to the end of the L2 test (how each VMM powers
# off differs by design: without ACPI, ours ends in a panic that panic=-1 turns into a
# reboot). Only kernel lines (a printk timestamp), carriage returns dropped, the timestamp
# cut and every number made N, so one complaint from another CPU, PID, address or size is
# still the same complaint; what is left names the complaint and where the kernel made it.
#   WARNING:                a WARN() splat: the kernel found something it asserts cannot be
#   BUG:|Oops|Call Trace    an oops, a BUG(), a soft lockup, sleeping in atomic; any stack dump
#   general protection|invalid opcode|double fault|stack segment   exceptions in the kernel
#   consistency problem     XSAVE sizes in CPUID disagree with the features offered
#   TSC unstable|unsynchronized|TSC warp|turning off TSC   the vCPUs' TSCs out of step
#   APIC timer disabled     the LAPIC timer failed calibration: the guest ticks on the PIT
#   Firmware Bug|FIRMWARE BUG|Firmware Warn   the platform's tables or CPUID contradict
#   unchecked MSR access    an MSR the CPUID offers that the VMM/KVM does not back
#   No irq handler|spurious an interrupt nobody asked for
#   clocksource.*unstable   the clocksource watchdog gave up on a clock
complaints() {
  sed -n '/^E2E-L2-DONE:/q;p' "$1" | tr -d '\r' |
    grep -E '^\[ *[0-9]+\.[0-9]+\] ' |
    grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|invalid opcode|double fault|stack segment|consistency problem|TSC unstable|unsynchronized|TSC warp|turning off TSC|APIC timer disabled|Firmware Bug|FIRMWARE BUG|Firmware Warn|unchecked MSR access|No irq handler|[Ss]purious|clocksource.*unstable' |
    sed -E 's/^\[ *[0-9]+\.[0-9]+\] //; s/(0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*/N/g' | sort -u || true
}
complaints "$qemu_console" >"$E2E_WORK/complaints-qemu.txt"
complaints "$ours_console" >"$E2E_WORK/complaints-vfsdax.txt"
echo "l2_qemu_kvm: complaints under QEMU-KVM: $(wc -l <"$E2E_WORK/complaints-qemu.txt"), under vfsdax-vmm: $(wc -l <"$E2E_WORK/complaints-vfsdax.txt")"
while IFS= read -r line; do echo "l2_qemu_kvm: QEMU-KVM's L2 too: $line"; done <"$E2E_WORK/complaints-qemu.txt"
new="$(grep -vxF -f "$E2E_WORK/complaints-qemu.txt" "$E2E_WORK/complaints-vfsdax.txt" || true)"
if [ -n "$new" ]; then
  while IFS= read -r line; do fail "only vfsdax-vmm's L2 logs: $line"; done <<<"$new"
fi
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "E2E-PASS: l2_qemu_kvm"
