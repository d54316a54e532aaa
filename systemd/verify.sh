#!/usr/bin/env bash
# Verifies the systemd units with `systemd-analyze verify`. Installs nothing: CI installs
# the `systemd` package first. verify wants the ExecStart binary to exist, so the units are
# copied to a temporary directory with /usr/bin/storenode replaced by a real binary.
#
#   systemd/verify.sh [BINARY]     (default: target/debug/storenode, else the first storenode on PATH)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="${1:-$here/../target/debug/storenode}"
[ -x "$binary" ] || binary="$(command -v storenode || true)"
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "verify.sh: no storenode binary (build it first or pass its path)" >&2
  exit 1
fi
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
if ! command -v systemd-analyze >/dev/null; then
  echo "verify.sh: systemd-analyze missing (apt-get install -y systemd)" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in "$here"/*.service; do
  sed "s#/usr/bin/storenode#$binary#g" "$unit" >"$work/$(basename "$unit")"
done
# Warnings (unknown keys, bad values) must fail CI too, so capture and check the output:
# verify exits 0 for some of them. Lines about the host itself (no systemd as PID 1 in a
# container, missing dependency units such as mosquitto.service) are not about our units.
out="$(cd "$work" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./*.service 2>&1)" || {
  echo "$out" >&2
  echo "verify.sh: systemd-analyze verify failed" >&2
  exit 1
}
relevant="$(printf '%s\n' "$out" | grep -v -e '^$' -e 'mosquitto.service' -e 'time-sync.target' || true)"
if [ -n "$relevant" ]; then
  printf '%s\n' "$relevant" >&2
  echo "verify.sh: systemd-analyze reported problems" >&2
  exit 1
fi
echo "units verified: $(cd "$work" && ls ./*.service | xargs -n1 basename | tr '\n' ' ')"
