#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# vfsdax-vmm boots L2 with its root file system on virtio-fs (dax=always): a busybox system in a host dir.
#
# Debian's kernel has virtiofs as a module, so the kernel cannot mount `root=rootfs
# rootfstype=virtiofs` by itself (that needs CONFIG_VIRTIO_FS=y): as on a Debian system, the
# initramfs loads the modules, mounts root= with rootfstype= and rootflags= from the command
# line and switch_roots into it (build-l2-initramfs). Everything after that runs from the
# share: /sbin/init, busybox and its applets, fsops. The init writes /proof (kernel release,
# a token from the host, the root's DAX state and mount line) and powers off; this script
# checks /proof once the VMM has exited 0. Two vCPUs with maxcpus=1: the second is never
# started, and the guest's poweroff must still end the VMM (halt detection counts it parked).
set -euo pipefail
fail() {
  echo "E2E-FAIL: vmm_rootfs: $*"
  bad=1
}
bad=0
for f in "$E2E_BIN/fsops" "$E2E_FILES/vmm_rootfs.init"; do
  [ -f "$f" ] || { echo "E2E-FAIL: vmm_rootfs: $f is missing (pass it with --bin/--file)"; exit 1; }
done
bb="$(command -v busybox)" || { echo "E2E-FAIL: vmm_rootfs: no busybox on this host"; exit 1; }

# The guest's root: static busybox with its applets as hard links (one --install, no fork
# per applet), the init, fsops, and the mount points the initramfs moves /dev /proc /sys to.
root="$E2E_WORK/root"
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
cp "$bb" "$root/bin/busybox"
"$root/bin/busybox" --install "$root/bin"
cp "$E2E_BIN/fsops" "$root/bin/fsops"
cp "$E2E_FILES/vmm_rootfs.init" "$root/sbin/init"
chmod 755 "$root/sbin/init" "$root/bin/fsops"
token="host-token-$$-${EPOCHREALTIME/./}"
echo "$token" >"$root/etc/e2e-token"
echo "vmm_rootfs: root file system: $(find "$root" | wc -l) entries, $(du -sk "$root" | cut -f1) KiB"

# The kernel release, from the bzImage header: a 16-bit pointer at 0x20e to the version
# string, relative to the end of the 512-byte boot sector.
version_at=$(od -An -tu2 -j526 -N2 "$E2E_KERNEL" | tr -d ' ')
release="$(dd if="$E2E_KERNEL" bs=1 skip=$((version_at + 512)) count=128 2>/dev/null | cut -d' ' -f1)"
echo "vmm_rootfs: kernel release from the bzImage: $release"

ulimit -Sn "$(ulimit -Hn)"
console="$E2E_WORK/l2-console.log"
set +e
timeout -k 10 "$E2E_VMM_TIMEOUT" "$E2E_VMM" --kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" \
  --cpus 2 --memory 512M \
  --cmdline "console=ttyS0 reboot=k panic=-1 maxcpus=1 rootfstype=virtiofs root=rootfs rw rootflags=dax=always" \
  --fs "tag=rootfs,dir=$root,dax-window=64M" </dev/null 2>&1 | tee "$console.raw"
rc=${PIPESTATUS[0]}
set -e
tr -d '\r' <"$console.raw" >"$console"
[ "$rc" -eq 0 ] || fail "vfsdax-vmm exited with $rc"
grep -q '^E2E-PASS: vmm_rootfs_guest$' "$console" || fail "the init on the virtio-fs root did not pass"

proof="$root/proof"
if [ -f "$proof" ]; then
  echo "vmm_rootfs: $proof, written by the guest:"
  cat "$proof"
  grep -qxF "kernel=$release" "$proof" || fail "/proof names another kernel than $release"
  grep -qxF "token=$token" "$proof" || fail "/proof does not carry this run's token $token"
  grep -qx 'busybox-dax=dax' "$proof" || fail "/bin/busybox was not accessed through DAX"
  grep -q '^root-mount=rootfs / virtiofs rw,.*dax=always' "$proof" ||
    fail "/proof shows no rw dax=always virtiofs mount on /"
else
  fail "the guest left no /proof in $root"
fi
[ "$bad" -eq 0 ] || exit 1
echo "E2E-PASS: vmm_rootfs"
