#!/usr/bin/env bash
# Cross-builds storenode for the store boxes with what rustup and Debian provide (gcc cross
# linkers, no Docker):
#
#   cross/build.sh [aarch64|armv7|all]     (default: all)
#
# PROFILE=<cargo profile> (default release: what the packages ship). A no-LTO profile was
# measured and was not faster here (more codegen units cost more CPU on 2 cores).
# The store boxes' binaries are built without the default features: no `embedded-broker`
# (the demo broker, rumqttd, and the second HTTP/TLS stack it pulls in: a box uses
# Mosquitto) and no `hq` (HQ mode and what needs an HQ: `demo`, `bench`, `privacy erase`,
# with HQ's PostgreSQL client and EPCIS schema validator: a store box runs no HQ).
# FEATURES=default builds them with both. Beside the binary, `storenode.features` says which
# were built in (cross/deb/build-deb.sh leaves HQ's unit out of a package without `hq`).
# When run as root, installs the missing cross toolchain and rustup targets itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. cross/env.sh

profile="${PROFILE:-release}"
case "${1:-all}" in
  all) arches=(aarch64 armv7) ;;
  aarch64 | arm64 | armv7 | armhf) arches=("$1") ;;
  *) echo "usage: cross/build.sh [aarch64|armv7|all]" >&2; exit 2 ;;
esac

install_missing() {
  local packages=() arch prefix
  for arch in "${arches[@]}"; do
    prefix="$(gnu_prefix "$arch")"
    command -v "${prefix}-gcc" >/dev/null || packages+=("gcc-${prefix}" "libc6-dev-$(deb_arch "$arch")-cross")
  done
  if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing ${packages[*]}: run as root, or apt-get install them" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
  for arch in "${arches[@]}"; do
    local triple
    triple="$(triple_for "$arch")"
    rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  done
}

install_missing
for arch in "${arches[@]}"; do
  triple="$(triple_for "$arch")"
  export_toolchain "$arch"
  # ring and rustls' other backend: aws-lc-rs does not cross-build for armv7 and must not
  # sneak in through a dependency's default features.
  if cargo tree --locked --target "$triple" -e normal -i aws-lc-rs >/dev/null 2>&1; then
    echo "aws-lc-rs is in the dependency tree for $triple; use rustls' ring backend" >&2
    exit 1
  fi
  start=$SECONDS
  features=(--no-default-features)
  [ "${FEATURES:-}" != default ] || features=()
  cargo build --locked --profile "$profile" --target "$triple" --bin storenode "${features[@]}"
  dir="$profile"
  binary="${CARGO_TARGET_DIR:-target}/$triple/$dir/storenode"
  if [ ${#features[@]} -eq 0 ]; then echo "default" ; else echo "none"; fi >"$binary.features"
  size=$(stat -c %s "$binary")
  printf '%s: %s (%s bytes, %s KiB) built in %ss\n' "$arch" "$binary" "$size" $((size / 1024)) $((SECONDS - start))
done
