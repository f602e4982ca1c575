#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vfsdax-vmm, 1 vCPU, packed rings, pci=nomsi (INTx): one share with a 4M DAX window, dax=always.
set -euo pipefail
# shellcheck source=fs_share.lib.sh
source "$E2E_FILES/fs_share.lib.sh"
seed_share "$E2E_WORK/dax"
console="$E2E_WORK/l2-console.log"
# pci=nomsi: the driver cannot use MSI-X and falls back to INTx + ISR for every interrupt.
run_vmm "$console" --cpus 1 --memory 512M --cmdline "console=ttyS0 reboot=k panic=-1 pci=nomsi" \
  --fs "tag=daxfs,dir=$E2E_WORK/dax,dax-window=4M,packed=on$fs_xattr_opt"
grep -q '^L2-CPUS: 1$' "$console" || fs_fail "L2 did not see 1 CPU"
grep -q '^L2-PACKED: 1$' "$console" || fs_fail "the guest driver did not negotiate packed rings"
check_share "$E2E_WORK/dax" packed-dax-always "$console"
check_pci_irq "$console"
# L2's /proc/interrupts: the device's interrupts came through I/O APIC pin 16, none by MSI.
grep -q '^L2-MSI-LINES: 0$' "$console" || fs_fail "L2 has MSI interrupts despite pci=nomsi"
# fasteoi: the level-triggered flow, as the MP table asks for a PCI line.
intx="$(sed -n 's/^L2-INTX: *16: *\([0-9]*\) .*IO-APIC *16-fasteoi .*virtio.*/\1/p' "$console")"
[ "${intx:-0}" -gt 0 ] || fs_fail "no virtio interrupts on IO-APIC 16: $(grep '^L2-INTX' "$console")"
echo "$E2E_NAME: ${intx:-0} INTx interrupts (IO-APIC 16)"
check_dax_used "$console" daxfs
fs_finish
