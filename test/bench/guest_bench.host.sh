#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# guest_bench, host side: vfsdax-vmm (virtio-fs, DAX on and off) against QEMU (virtio-9p) on one share, one run.
#
# Run by test/e2e/run (the e2e host-script contract, test/e2e/README.md): directly where
# /dev/kvm works, else inside the nested L1 guest, where both VMMs run on L1's KVM. Both boot
# the same kernel and initramfs (guest_bench.l2.sh does the guest side) with the same memory,
# vCPU count and command line. Each VMM boots once with the workload, the way it boots
# fastest: ours the uncompressed vmlinux (E2E_VMLINUX: no in-guest decompression), QEMU the
# bzImage through its firmware. Then, boot-only, twice more each from both kernel files (ours
# from the bzImage too, QEMU from the vmlinux by its PVH entry), interleaved, so each format
# is also compared like for like. A boot figure is the best of its boots: one boot is noisy
# when nested (its kernel part alone moved 5-11 s between runs).
# Boot to init = from just before the VMM is exec'd to the moment L2's /init marker line
# (E2E-L2-INIT, printed by /init right after it mounted /proc) reaches this script through
# the VMM's serial console on stdout: the same path for both VMMs. The guest's uptime in that
# line splits it: "kernel" (kvm-clock time until /init) and the rest, "before" (VMM start,
# firmware, loading, decompression).
# The share sits on a tmpfs with 2 MiB pages (needs root, as in L1; why below), and each read
# pass is followed by an "MM:" line: KVM's page faults during it and the huge pages in use.
set -euo pipefail
name=guest_bench
# On stderr, so a failure inside $(...) still reaches the console.
fail() {
  echo "E2E-FAIL: $name: $*" >&2
  exit 1
}
qemu="$E2E_BIN/qemu-system-x86_64"
[ -x "$qemu" ] || fail "$qemu is missing (pass --bin /usr/bin/qemu-system-x86_64)"
for f in bios-256k.bin pvh.bin; do
  [ -f "$E2E_FILES/$f" ] || fail "$f is missing (pass --file /usr/share/seabios or qemu/$f)"
done
[ -f "${E2E_VMLINUX:-}" ] || fail "no uncompressed kernel in E2E_VMLINUX (run with --l2-vmlinux)"

share="$E2E_WORK/share"
mkdir -p "$share"
# A DAX read pays one KVM nested page fault per window page the guest touches, each a costly
# exit (emulated when nested). KVM maps a 2 MiB page only where the VMM's own mapping of the
# file is 2 MiB, and shmem gives a MAP_SHARED file mapping 2 MiB pages only on a tmpfs mounted
# with huge pages. Both VMMs serve this one directory, so the comparison stays like for like.
# within_size keeps the 1000 small files on 4 KiB pages (huge=always would give each one 2 MiB).
# Mounting needs root (always so in L1); elsewhere the share stays on 4 KiB pages.
if [ "$EUID" -eq 0 ]; then
  mount -t tmpfs -o huge=within_size,size=256m guest_bench_share "$share" ||
    fail "mount of a huge-page tmpfs on $share failed"
  trap 'umount "$share"' EXIT
else
  echo "$name: NOTE: not root, so the share is not on a huge-page tmpfs: DAX gets 4 KiB host pages"
fi
mkdir -p "$share/files"
# within_size gives a 2 MiB page only to a block wholly inside the file's size: set it first.
dd if=/dev/zero of="$share/big.bin" bs=1M seek=64 count=0 2>/dev/null
dd if=/dev/urandom of="$share/big.bin" bs=1M count=64 conv=notrunc 2>/dev/null
for ((i = 1; i <= 1000; i++)); do echo "$i" >"$share/files/f$i"; done
# The FUSE server keeps an O_PATH fd per inode the guest looked up.
ulimit -Sn "$(ulimit -Hn)"

# Where a read pass's time goes: KVM's page faults (vCPU exits to KVM's MMU, summed over every
# live VM) and the size of KVM's guest mappings, from debugfs; and from /proc/meminfo, how much
# of the share's tmpfs is in 2 MiB pages and how much of it is mapped into a VMM with them.
kvm_stats=/sys/kernel/debug/kvm
if [ ! -e "$kvm_stats" ] && [ "$EUID" -eq 0 ]; then
  mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi
# These read with shell builtins only, not even a subshell: the console loop calls them while
# the guest runs on, and the figures should be taken before it moves past them.
# kvm_stat VAR NAME: sets VAR to KVM's statistic NAME, or n/a.
kvm_stat() {
  printf -v "$1" n/a
  if [ -r "$kvm_stats/$2" ]; then read -r "$1" <"$kvm_stats/$2"; fi
}
# Sets shmem_huge to the ShmemHugePages and ShmemPmdMapped lines of /proc/meminfo.
read_shmem_huge() {
  local key kb rest
  shmem_huge=""
  while read -r key kb rest; do
    case "$key" in ShmemHugePages: | ShmemPmdMapped:) shmem_huge+=" ${key%:}=${kb}kB" ;; esac
  done </proc/meminfo
  shmem_huge="${shmem_huge# }"
}
read_shmem_huge
echo "$name: share seeded: $shmem_huge"

base_cmdline="console=ttyS0 quiet reboot=k panic=-1"

now_us() { echo "${EPOCHREALTIME/./}"; }

# Copies the VMM's console to stdout and LOG (without \r) and writes the arrival time of the
# first E2E-L2-INIT line to INITFILE. After each read pass (from the guest's BENCH-PASS line to
# its result) it prints the KVM page faults taken meanwhile and the mappings that stand then.
stamp() {
  local log="$1" initfile="$2" line faults_at_start=""
  : >"$log"
  while IFS= read -r line; do
    line="${line//$'\r'/}"
    if [ ! -s "$initfile" ] && [[ "$line" == E2E-L2-INIT:* ]]; then now_us >"$initfile"; fi
    printf '%s\n' "$line" >>"$log"
    printf '%s\n' "$line"
    case "$line" in
      "BENCH-PASS: "*" read "*) kvm_stat faults_at_start pf_taken ;;
      "BENCH: "*" read "*)
        local faults pages_2m pages_4k
        kvm_stat faults pf_taken
        kvm_stat pages_2m pages_2m
        kvm_stat pages_4k pages_4k
        read_shmem_huge
        if [[ "$faults" =~ ^[0-9]+$ && "$faults_at_start" =~ ^[0-9]+$ ]]; then
          faults=$((faults - faults_at_start))
        fi
        line="$name: MM: ${line#BENCH: }: KVM page faults $faults; now KVM maps $pages_2m 2M + $pages_4k 4K pages; $shmem_huge"
        printf '%s\n' "$line" >>"$log"
        printf '%s\n' "$line"
        ;;
    esac
  done
}

# boot LABEL COMMAND...: runs one VMM, bounded; sets boot_us[LABEL]. Fails the bench unless
# the VMM exits 0 after L2's /init finished with rc=0.
declare -A boot_us=()
boot() {
  local label="$1" rc t0 t_init
  shift
  echo "$name: --- $label: $*"
  rm -f "$E2E_WORK/$label.t0" "$E2E_WORK/$label.init"
  set +e
  (
    now_us >"$E2E_WORK/$label.t0"
    exec timeout -k 10 "$E2E_VMM_TIMEOUT" "$@" </dev/null 2>&1
  ) | stamp "$E2E_WORK/$label.log" "$E2E_WORK/$label.init"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || fail "$label: $1 exited with $rc"
  grep -q '^E2E-L2-DONE: rc=0' "$E2E_WORK/$label.log" || fail "$label: the L2 guest did not finish with rc=0"
  t0="$(cat "$E2E_WORK/$label.t0")"
  t_init="$(cat "$E2E_WORK/$label.init" 2>/dev/null)" || fail "$label: no E2E-L2-INIT line from the guest"
  boot_us[$label]=$((t_init - t0))
}

# ours|theirs LABEL KERNEL CMDLINE
ours() {
  local label="$1" kernel="$2" cmdline="$3"
  boot "$label" "$E2E_VMM" --kernel "$kernel" --initrd "$E2E_INITRD" --cpus 1 --memory 512M \
    --cmdline "$cmdline" --fs "tag=bench,dir=$share,dax-window=128M"
}
theirs() {
  local label="$1" kernel="$2" cmdline="$3"
  boot "$label" "$qemu" -accel kvm -cpu host -m 512 -smp 1 -nodefaults -L "$E2E_FILES" \
    -kernel "$kernel" -initrd "$E2E_INITRD" -append "$cmdline" \
    -fsdev "local,id=bench,path=$share,security_model=none" \
    -device virtio-9p-pci,fsdev=bench,mount_tag=bench -serial stdio -display none -no-reboot
}

# Interleaved, so a change in the machine's load hits both VMMs alike.
ours ours-base "$E2E_VMLINUX" "$base_cmdline"
theirs qemu-base "$E2E_KERNEL" "$base_cmdline"
for round in 2 3; do
  ours "ours-vmlinux-$round" "$E2E_VMLINUX" "$base_cmdline guest_bench.boot_only"
  theirs "qemu-bzimage-$round" "$E2E_KERNEL" "$base_cmdline guest_bench.boot_only"
  ours "ours-bzimage-$round" "$E2E_KERNEL" "$base_cmdline guest_bench.boot_only"
  theirs "qemu-vmlinux-$round" "$E2E_VMLINUX" "$base_cmdline guest_bench.boot_only"
done

# best LOG LABEL KIND FIELD: the smallest ns over the repetitions of "BENCH: LABEL KIND ..."
# lines, with FIELD (bytes or files) of that line; fails when there is none.
best() {
  local got
  got="$(sed -n "s/^BENCH: $2 $3 $4=\([0-9]*\) ns=\([0-9]*\)\$/\2 \1/p" "$1" | sort -n | head -n1)"
  [ -n "$got" ] || fail "no '$2 $3' figure in $1"
  echo "$got"
}
# The guest's uptime (s) in the E2E-L2-INIT line of boot LABEL.
uptime_at_init() {
  local up
  up="$(sed -n 's/^E2E-L2-INIT: uptime=\([0-9.]*\)$/\1/p' "$E2E_WORK/$1.log" | head -n1)"
  [ -n "$up" ] || fail "$1: no uptime in the E2E-L2-INIT line"
  echo "$up"
}
calc() { awk "BEGIN { printf \"%.${1}f\", $2 }"; }
verdict() { awk "BEGIN { print ($1) ? \"met\" : \"missed\" }"; }

r="$(best "$E2E_WORK/ours-base.log" dax read bytes)"
read -r dax_ns dax_bytes <<<"$r"
r="$(best "$E2E_WORK/ours-base.log" nodax read bytes)"
read -r nodax_ns nodax_bytes <<<"$r"
r="$(best "$E2E_WORK/qemu-base.log" 9p read bytes)"
read -r p9_ns p9_bytes <<<"$r"
r="$(best "$E2E_WORK/ours-base.log" dax stat files)"
read -r dax_stat_ns dax_files <<<"$r"
r="$(best "$E2E_WORK/ours-base.log" nodax stat files)"
read -r nodax_stat_ns nodax_files <<<"$r"
r="$(best "$E2E_WORK/qemu-base.log" 9p stat files)"
read -r p9_stat_ns p9_files <<<"$r"
for b in "$dax_bytes" "$nodax_bytes" "$p9_bytes"; do
  [ "$b" = 67108864 ] || fail "a read returned $b bytes, want 67108864"
done
for n in "$dax_files" "$nodax_files" "$p9_files"; do
  [ "$n" = 1000 ] || fail "a stat pass covered $n files, want 1000"
done
mibs() { calc 1 "$1 / 1048576 / ($2 / 1e9)"; }
dax_mibs="$(mibs "$dax_bytes" "$dax_ns")"
nodax_mibs="$(mibs "$nodax_bytes" "$nodax_ns")"
p9_mibs="$(mibs "$p9_bytes" "$p9_ns")"
secs() { calc 2 "$1 / 1e6"; }

echo "$name: ===== results (best of 3 per figure; 64 MiB file, caches dropped before each pass) ====="
if [ "$E2E_MODE" = nested ]; then
  echo "$name: NOTE: nested mode: L1 runs under QEMU-TCG, so every figure is emulation speed;"
  echo "$name: NOTE: only the ratios between figures of this one run mean anything."
fi
echo "dax read: $dax_mibs MiB/s"
echo "nodax read: $nodax_mibs MiB/s"
echo "9p read: $p9_mibs MiB/s"
echo "dax/nodax: $(calc 2 "$nodax_ns / $dax_ns") x"
echo "dax/9p: $(calc 2 "$p9_ns / $dax_ns") x (target >= 5: $(verdict "$p9_ns / $dax_ns >= 5"))"
# faults LOG LABEL: the KVM page faults of each read pass of LABEL, comma-separated.
faults() {
  local per_pass
  mapfile -t per_pass < <(sed -n "s/^$name: MM: $2 read .*: KVM page faults \([^;]*\);.*/\1/p" "$1")
  local IFS=,
  echo "${per_pass[*]}"
}
echo "KVM page faults per read pass: dax $(faults "$E2E_WORK/ours-base.log" dax); nodax $(faults "$E2E_WORK/ours-base.log" nodax); 9p $(faults "$E2E_WORK/qemu-base.log" 9p)"
echo "stat 1000: dax $(calc 1 "$dax_stat_ns / 1e6") ms, nodax $(calc 1 "$nodax_stat_ns / 1e6") ms, 9p $(calc 1 "$p9_stat_ns / 1e6") ms (9p/dax $(calc 2 "$p9_stat_ns / $dax_stat_ns") x)"
# fastest LABEL...: the label of the quickest of these boots.
fastest() {
  local best="$1" label
  for label in "$@"; do
    [ "${boot_us[$label]}" -ge "${boot_us[$best]}" ] || best="$label"
  done
  echo "$best"
}
# boot_line WHAT OURS QEMU: boot to init of two boots, their ratio, and where each one's time went.
boot_line() {
  local o="${boot_us[$2]}" q="${boot_us[$3]}" ok qk
  ok="$(uptime_at_init "$2")"
  qk="$(uptime_at_init "$3")"
  echo "boot to init$1: ours $(secs "$o") s, qemu $(secs "$q") s, ratio $(calc 2 "$o / $q") x (target <= 0.5: $(verdict "$o / $q <= 0.5"))"
  echo "$name:   split: ours before the kernel $(calc 2 "$o / 1e6 - $ok") s + kernel $ok s; qemu before the kernel $(calc 2 "$q / 1e6 - $qk") s + kernel $qk s"
}
# samples LABEL...: each boot's time, in s.
samples() {
  local label out=()
  for label in "$@"; do out+=("$(secs "${boot_us[$label]}")"); done
  echo "${out[*]}"
}
echo "$name: boot to init samples (s): ours vmlinux $(samples ours-base ours-vmlinux-2 ours-vmlinux-3);" \
  "qemu bzImage $(samples qemu-base qemu-bzimage-2 qemu-bzimage-3);" \
  "ours bzImage $(samples ours-bzimage-2 ours-bzimage-3); qemu vmlinux $(samples qemu-vmlinux-2 qemu-vmlinux-3)"
ours_vmlinux="$(fastest ours-base ours-vmlinux-2 ours-vmlinux-3)"
qemu_bzimage="$(fastest qemu-base qemu-bzimage-2 qemu-bzimage-3)"
boot_line " (best of 3; ours: vmlinux, qemu: bzImage)" "$ours_vmlinux" "$qemu_bzimage"
boot_line " (best; both bzImage)" "$(fastest ours-bzimage-2 ours-bzimage-3)" "$qemu_bzimage"
boot_line " (best; both vmlinux, qemu by PVH)" "$ours_vmlinux" "$(fastest qemu-vmlinux-2 qemu-vmlinux-3)"
echo "E2E-PASS: $name"
