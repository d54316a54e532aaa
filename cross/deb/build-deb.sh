#!/usr/bin/env bash
# Builds storenode's .deb with dpkg-deb (no cargo-deb to install in CI):
#
#   cross/deb/build-deb.sh [native|amd64|aarch64|armv7] [--binary PATH] [--out DIR] [--version V]
#
# The binary defaults to the release build for that architecture (cross/build.sh; native
# and amd64: target/$PROFILE/storenode); a binary with debug info is stripped into the
# package. The package installs the binary, the units, the udev rules, the example
# configuration (/usr/share/storenode) and the docs (README.md, docs/; the units point at
# docs/operations.md); its maintainer scripts (this directory) create the storenode user
# (in dialout), the state directory and, on a fresh install, /etc/storenode/storenode.toml
# from the example. That file is not a conffile: `storenode provision` rewrites it, and an
# upgrade must never stop at dpkg's conffile prompt. They enable the service, back the
# database up before an upgrade migrates it, and keep the data on remove (purge deletes it).
# --version overrides Cargo.toml's (tests build a "previous" package to upgrade from, with
# EXAMPLE_CONFIG=FILE: an example that differs, as between two releases).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/cross/env.sh"
fail() { echo "build-deb.sh: $*" >&2; exit 1; }

arch="native"
binary=""
version=""
out="${CARGO_TARGET_DIR:-$root/target}/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    native | aarch64 | arm64 | armv7 | armhf) arch="$1" ;;
    amd64 | x86_64) arch=amd64 ;;
    --binary) binary="$2"; shift ;;
    --out) out="$2"; shift ;;
    --version) version="$2"; shift ;;
    *) echo "usage: build-deb.sh [native|amd64|aarch64|armv7] [--binary PATH] [--out DIR] [--version V]" >&2; exit 2 ;;
  esac
  shift
done

profile="${PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [ "$arch" = native ] || [ "$arch" = amd64 ]; then
  debarch="$(dpkg --print-architecture)"
  [ "$arch" = native ] || [ "$debarch" = amd64 ] || fail "amd64 builds on an amd64 machine (native)"
  [ -n "$binary" ] || binary="$target_dir/$profile/storenode"
else
  debarch="$(deb_arch "$arch")"
  [ -n "$binary" ] || binary="$target_dir/$(triple_for "$arch")/$profile/storenode"
fi
udev_rules="$root/hardware/99-storenode.rules"
[ -x "$binary" ] || fail "no binary at $binary (cross/build.sh $arch, or pass --binary)"
[ -f "$udev_rules" ] || fail "missing $udev_rules (the udev rules for the scanners and readers)"
command -v dpkg-deb >/dev/null || fail "dpkg-deb missing (apt-get install dpkg)"
# Every USB id a device profile names must be matched by the shipped udev rules.
for profile_file in "$root"/hardware/profiles/*.toml; do
  vid="$(sed -n 's/^vendor_id = "\(.*\)"/\1/p' "$profile_file")"
  pid="$(sed -n 's/^product_id = "\(.*\)"/\1/p' "$profile_file")"
  [ -n "$vid" ] || continue
  match="ATTRS{idVendor}==\"$vid\""
  [ -z "$pid" ] || match="$match, ATTRS{idProduct}==\"$pid\""
  grep -qF "$match" "$udev_rules" ||
    fail "$(basename "$profile_file") names USB id $vid:${pid:-*}, which $udev_rules does not match"
done

[ -n "$version" ] || version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
[ -n "$version" ] || fail "no version in Cargo.toml"
pkg="$(mktemp -d)"
# mktemp makes 0700; the archive's root entry must not carry that onto /.
chmod 0755 "$pkg"
trap 'rm -rf "$pkg"' EXIT

install -D -m 0755 "$binary" "$pkg/usr/bin/storenode"
# A debug build carries ~10x its code in debug info; the package never needs it.
if readelf -S "$binary" 2>/dev/null | grep -q '\.debug_info'; then
  case "$arch" in
    native | amd64) objcopy=objcopy ;;
    *) objcopy="$(gnu_prefix "$arch")-objcopy" ;;
  esac
  "$objcopy" --strip-debug "$pkg/usr/bin/storenode"
fi
install -D -m 0644 "$root/systemd/storenode.service" "$pkg/lib/systemd/system/storenode.service"
# HQ's unit and example only where the binary has HQ: cross/build.sh's box builds leave the
# `hq` feature out and say so in storenode.features beside the binary.
with_hq=yes
if [ -f "$binary.features" ] && ! grep -qw default "$binary.features"; then with_hq=no; fi
[ "$with_hq" = no ] || install -D -m 0644 "$root/systemd/storenode-hq.service" "$pkg/lib/systemd/system/storenode-hq.service"
install -D -m 0644 "$root/systemd/storenode-provision.service" "$pkg/lib/systemd/system/storenode-provision.service"
install -D -m 0644 "$udev_rules" "$pkg/lib/udev/rules.d/99-storenode.rules"
# Not under /usr/share/doc: postinst copies it, and minimal systems drop docs (path-exclude).
install -D -m 0644 "${EXAMPLE_CONFIG:-$root/config/storenode.example.toml}" "$pkg/usr/share/storenode/storenode.example.toml"
[ "$with_hq" = no ] || install -D -m 0644 "$root/config/hq.example.toml" "$pkg/usr/share/storenode/storenode-hq.example.toml"
# The documentation, laid out as in the sources so its relative links between files hold;
# the units' Documentation= points at docs/operations.md (IT and technicians).
install -D -m 0644 "$root/README.md" "$pkg/usr/share/doc/storenode/README.md"
for doc in "$root"/docs/*.md; do
  install -D -m 0644 "$doc" "$pkg/usr/share/doc/storenode/docs/$(basename "$doc")"
done
grep -ho 'Documentation=file://[^ ]*' "$root"/systemd/*.service | sed 's#Documentation=file://##' | sort -u |
  while read -r doc; do [ -f "$pkg$doc" ] || fail "a unit points at $doc, which the package does not ship"; done
printf 'storenode (%s) stable; urgency=medium\n\n  * Built from the storenode sources.\n\n -- storenode maintainers <maintainers@storenode.invalid>  %s\n' \
  "$version" "$(date -uR -d "@${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n >"$pkg/usr/share/doc/storenode/changelog.gz"
cat >"$pkg/usr/share/doc/storenode/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: storenode

Files: *
Copyright: 2024-2026 storenode contributors
License: Apache-2.0
 On Debian systems the full license is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

install -d "$pkg/DEBIAN"
for script in preinst postinst prerm postrm; do
  install -m 0755 "$root/cross/deb/$script" "$pkg/DEBIAN/$script"
done
# The newest glibc symbol version the binary needs is its real libc6 dependency.
glibc="$(readelf --version-info "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)"
size_kib="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: storenode
Version: $version
Architecture: $debarch
Maintainer: storenode maintainers <maintainers@storenode.invalid>
Installed-Size: $size_kib
Depends: libc6 (>= ${glibc:-2.31}), passwd
Recommends: systemd, udev
Section: net
Priority: optional
Homepage: https://github.com/storenode/storenode
Description: edge node for physical retail stores
 POS API for tills and handhelds, serial barcode scanners and UHF RFID
 readers, stock in SQLite, and offline-first sync with HQ over MQTT.
CONTROL

mkdir -p "$out"
deb="$out/storenode_${version}_${debarch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
