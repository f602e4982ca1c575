# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the e2e scripts: error reporting, cache location, kernel file lookup.
# Sourced (not run) by the scripts in this directory, which already set -euo pipefail.
# E2E_DIR is used by the scripts that source this file, not here:
# shellcheck shell=bash disable=SC2034

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The download cache lives outside git (test/e2e/cache/ is gitignored) and is shared by every
# build directory, so the kernel package is fetched once per checkout.
E2E_CACHE="${E2E_CACHE:-$E2E_DIR/cache}"

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 1
}

note() {
  echo "$(basename "$0"): $*" >&2
}

need_value() {
  # $1 option name, $2 number of remaining arguments (the option included).
  [ "$2" -ge 2 ] || die "option $1 needs a value"
}

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install it (bash .ci/setup installs everything)"
  done
}

# Prints the vmlinuz of an extracted kernel package root.
kernel_image() {
  local root="$1" images=()
  shopt -s nullglob
  images=("$root"/boot/vmlinuz-*)
  shopt -u nullglob
  [ ${#images[@]} -eq 1 ] || die "expected one boot/vmlinuz-* under $root, found ${#images[@]}"
  echo "${images[0]}"
}

# Prints an uncompressed copy (ELF vmlinux) of the kernel package root's vmlinuz, extracting
# it on first use: the bzImage's payload (payload_offset and payload_length in its setup
# header) is the vmlinux, compressed. Debian compresses it with xz.
kernel_vmlinux() {
  local root="$1" vmlinuz vmlinux setup_sects offset length tmp
  vmlinuz="$(kernel_image "$root")"
  vmlinux="$root/boot/vmlinux-${vmlinuz##*/vmlinuz-}"
  if [ ! -f "$vmlinux" ]; then
    need_tools od dd xz
    read -r setup_sects < <(od -An -tu1 -j $((0x1f1)) -N1 "$vmlinuz")
    read -r offset length < <(od -An -tu4 -j $((0x248)) -N8 "$vmlinuz")
    [ "$setup_sects" -ne 0 ] || setup_sects=4
    offset=$(((setup_sects + 1) * 512 + offset))
    [ "$(od -An -tx1 -j "$offset" -N6 "$vmlinuz" | tr -d ' ')" = fd377a585a00 ] ||
      die "$vmlinuz: its payload is not xz-compressed (only xz is handled here)"
    # Several cases may extract at once: each writes its own files, the rename is atomic. No
    # pipe: xz stops reading at the stream's end (the payload has a size trailer after it), and
    # under pipefail the writer's SIGPIPE would fail the extraction.
    tmp="$(mktemp "$vmlinux.XXXXXX")"
    if ! dd if="$vmlinuz" of="$tmp.xz" bs=1M iflag=skip_bytes,count_bytes skip="$offset" \
      count="$length" status=none || ! xz -dc --single-stream <"$tmp.xz" >"$tmp"; then
      rm -f "$tmp" "$tmp.xz"
      die "$vmlinuz: its payload could not be read or decompressed with xz"
    fi
    rm -f "$tmp.xz"
    mv "$tmp" "$vmlinux"
  fi
  echo "$vmlinux"
}

# Prints the lib/modules/<version> directory of an extracted kernel package root.
kernel_modules() {
  local root="$1" dirs=()
  shopt -s nullglob
  dirs=("$root"/lib/modules/*/kernel)
  shopt -u nullglob
  [ ${#dirs[@]} -eq 1 ] || die "expected one lib/modules/*/kernel under $root, found ${#dirs[@]}"
  dirname "${dirs[0]}"
}

# Copies one module to $2, decompressing .ko.xz / .ko.zst so busybox insmod can load it.
install_module() {
  local src="$1" dst="$2"
  case "$src" in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) need_tools xz; xz -dc "$src" >"$dst" ;;
    *.ko.zst) need_tools zstd; zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module file type: $src" ;;
  esac
}

# Finds a module by its path relative to kernel/ without the suffix, e.g. fs/fuse/fuse.
find_module() {
  local moddir="$1" rel="$2" s
  for s in .ko .ko.xz .ko.zst .ko.gz; do
    if [ -f "$moddir/kernel/$rel$s" ]; then
      echo "$moddir/kernel/$rel$s"
      return 0
    fi
  done
  die "module $rel not found under $moddir/kernel"
}

# Reads the depends= field of a module's .modinfo (comma separated module names).
module_depends() {
  local file="$1" tmp
  # modinfo takes a path only when it ends in .ko; otherwise it looks up a module name.
  tmp="$(mktemp --suffix=.ko)"
  install_module "$file" "$tmp"
  modinfo -F depends "$tmp" || { rm -f "$tmp"; die "modinfo failed on $file"; }
  rm -f "$tmp"
}

# Prints the modules needed for the given relative module paths, dependencies first, one file
# per line, each once. Dependencies are found by name anywhere under kernel/.
resolve_modules() {
  local moddir="$1"
  shift
  need_tools modinfo
  local -A index=() seen=()
  local f name
  # Parameter expansion only: thousands of modules, a fork each would take seconds.
  while IFS= read -r f; do
    name="${f##*/}"
    name="${name%%.ko*}"
    index["${name//-/_}"]="$f"
  done < <(find "$moddir/kernel" -name '*.ko*' -type f)
  local order=()
  visit() {
    local file="$1" dep deps n
    n="${file##*/}"
    n="${n%%.ko*}"
    n="${n//-/_}"
    [ -z "${seen[$n]:-}" ] || return 0
    seen[$n]=1
    deps="$(module_depends "$file")"
    local dep_list=()
    IFS=, read -ra dep_list <<<"$deps"
    for dep in "${dep_list[@]}"; do
      [ -n "$dep" ] || continue
      [ -n "${index[${dep//-/_}]:-}" ] || die "module $n depends on $dep, which is not in $moddir"
      visit "${index[${dep//-/_}]}"
    done
    order+=("$file")
  }
  local rel file
  for rel in "$@"; do
    file="$(find_module "$moddir" "$rel")"
    visit "$file"
  done
  printf '%s\n' "${order[@]}"
}

# Puts the static busybox in an initramfs tree with /bin/sh for the /init shebang. The other
# applet links are made by the guest's /init (busybox --install -s): a few hundred ln forks
# here cost seconds on a loaded machine, and nothing in the guest.
install_busybox() {
  local root="$1" bb
  bb="$(command -v busybox)" || die "busybox not found; install busybox-static"
  file_is_static "$bb" || die "$bb is not statically linked; install busybox-static"
  mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
  cp "$bb" "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
}

file_is_static() {
  # ldd exits non-zero ("not a dynamic executable") for static binaries.
  ! ldd "$1" >/dev/null 2>&1
}

# Writes one newc cpio entry header plus its padded name (no data) to stdout.
cpio_header() {
  local name="$1" mode="$2" nlink="$3" rmaj="$4" rmin="$5" ino="$6" namesize pad
  namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    "$ino" "$mode" 0 0 "$nlink" 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0
  printf '%s\0' "$name"
  # Header (110 bytes) plus name are padded to a multiple of 4.
  pad=$(((4 - (110 + namesize) % 4) % 4))
  head -c "$pad" /dev/zero
}

# Packs a directory tree as an uncompressed newc cpio: the kernel unpacks it without a
# decompressor, which matters under TCG where every emulated instruction is slow.
# A /dev/console node is appended as a second archive written by hand (the kernel accepts
# concatenated archives): without it init has no stdout, and mknod would need root.
pack_cpio() {
  local root="$1" out="$2" tmp
  need_tools cpio
  tmp="$out.tmp.$$"
  mkdir -p "$root/dev"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$tmp"
  {
    cpio_header dev/console $((0020600)) 1 5 1 900001
    cpio_header 'TRAILER!!!' 0 1 0 0 0
  } >>"$tmp"
  mv "$tmp" "$out"
}
