#!/usr/bin/env bash
# Builds storenode's .deb with dpkg-deb (no cargo-deb to install in CI):
#
#   cross/deb/build-deb.sh [native|aarch64|armv7] [--binary PATH] [--out DIR]
#
# The binary defaults to the release build for that architecture (cross/build.sh). The
# package installs the binary, both units, the configuration (a conffile), the udev rules
# and the docs; its maintainer scripts (this directory) create the storenode user (in
# dialout) and state directory, enable the service, back the database up before an
# upgrade migrates it, and keep the data on remove (purge deletes it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/cross/env.sh"

arch="native"
binary=""
out="${CARGO_TARGET_DIR:-$root/target}/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    native | aarch64 | arm64 | armv7 | armhf) arch="$1" ;;
    --binary) binary="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "usage: build-deb.sh [native|aarch64|armv7] [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

profile="${PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [ "$arch" = native ]; then
  debarch="$(dpkg --print-architecture)"
  [ -n "$binary" ] || binary="$target_dir/$profile/storenode"
else
  debarch="$(deb_arch "$arch")"
  [ -n "$binary" ] || binary="$target_dir/$(triple_for "$arch")/$profile/storenode"
fi
udev_rules="$root/hardware/99-storenode.rules"
fail() { echo "build-deb.sh: $*" >&2; exit 1; }
[ -x "$binary" ] || fail "no binary at $binary (cross/build.sh $arch, or pass --binary)"
[ -f "$udev_rules" ] || fail "missing $udev_rules (the udev rules for the scanners and readers)"
command -v dpkg-deb >/dev/null || fail "dpkg-deb missing (apt-get install dpkg)"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
[ -n "$version" ] || fail "no version in Cargo.toml"
pkg="$(mktemp -d)"
# mktemp makes 0700; the archive's root entry must not carry that onto /.
chmod 0755 "$pkg"
trap 'rm -rf "$pkg"' EXIT

install -D -m 0755 "$binary" "$pkg/usr/bin/storenode"
install -D -m 0644 "$root/systemd/storenode.service" "$pkg/lib/systemd/system/storenode.service"
install -D -m 0644 "$root/systemd/storenode-hq.service" "$pkg/lib/systemd/system/storenode-hq.service"
install -D -m 0644 "$root/config/storenode.example.toml" "$pkg/etc/storenode/storenode.toml"
install -D -m 0644 "$udev_rules" "$pkg/lib/udev/rules.d/99-storenode.rules"
install -D -m 0644 "$root/config/storenode.example.toml" "$pkg/usr/share/doc/storenode/storenode.example.toml"
# Field-operations docs live in README.md (IT and technician sections).
cat >"$pkg/usr/share/doc/storenode/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: storenode
License: Apache-2.0
 On Debian systems the full license is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

install -d "$pkg/DEBIAN"
for script in preinst postinst prerm postrm; do
  install -m 0755 "$root/cross/deb/$script" "$pkg/DEBIAN/$script"
done
echo /etc/storenode/storenode.toml >"$pkg/DEBIAN/conffiles"
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
