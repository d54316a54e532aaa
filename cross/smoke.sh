#!/usr/bin/env bash
# End-to-end smoke test of a cross-built binary under qemu-user:
#
#   cross/smoke.sh aarch64 [native]
#
# Runs `--version`, `config check` on the example configuration, then imports a catalog,
# starts the node under qemu, waits for /healthz, sells through the API with curl, checks
# the answer and stops it with SIGTERM. Prints start-to-ready time and idle RSS (of the qemu process,
# which includes the emulator's own memory). `native` also measures the host binary.
# Installs qemu-user when missing and run as root. Build first: cross/build.sh aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
. cross/env.sh

arch="${1:-aarch64}"
triple="$(triple_for "$arch")"
prefix="$(gnu_prefix "$arch")"
qemu="qemu-$(echo "$triple" | cut -d- -f1 | sed 's/armv7/arm/')"
target_dir="${CARGO_TARGET_DIR:-target}"
profile="${PROFILE:-release}"
binary="$target_dir/$triple/$profile/storenode"
[ -x "$binary" ] || { echo "no $binary: run cross/build.sh $arch first" >&2; exit 1; }
if ! command -v "$qemu" >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "$qemu missing: apt-get install qemu-user" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user
fi
command -v curl >/dev/null || { echo "curl missing" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# run_node LABEL CMD...: imports a catalog, starts `run` on a free port, waits for
# /healthz, sells, measures, stops with SIGTERM (as systemd does).
run_node() {
  local label="$1"; shift
  local port data log started ready pid rss sale
  port="$(free_port)"
  data="$work/$label"
  log="$work/$label.log"
  mkdir -p "$data"
  cat >"$data/storenode.toml" <<CONFIG
[node]
store_id = "smoke"
data_dir = "$data"
[log]
format = "json"
[api]
listen = "127.0.0.1:$port"
[[api.terminals]]
id = "pos1"
token = "smoke-token-pos1-0123456789"
CONFIG
  printf 'sku,name,price_minor,currency,tax_class,variable_measure,gtins\nMILK-1L,Whole milk 1 l,119,EUR,reduced,false,4006381333931\n' >"$data/catalog.csv"
  "$@" --config "$data/storenode.toml" catalog import "$data/catalog.csv" >/dev/null
  started="$(now_ms)"
  "$@" --config "$data/storenode.toml" run >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "$label: node exited" >&2; return 1; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$log" >&2; echo "$label: not ready in 60 s" >&2; return 1; }
  ready=$(( $(now_ms) - started ))
  sale="$(curl -sf -H 'Authorization: Bearer smoke-token-pos1-0123456789' -H 'Idempotency-Key: smoke-1' \
    "http://127.0.0.1:$port/v1/sales" \
    -d '{"lines":[{"sku":"MILK-1L","quantity":2}],"payments":[{"method":"cash","amount_minor":500}]}')" \
    || { cat "$log" >&2; echo "$label: sale failed" >&2; return 1; }
  case "$sale" in
    *'"total_minor":238'*'"change_minor":262'* | *'"change_minor":262'*'"total_minor":238'*) ;;
    *) echo "$label: unexpected sale answer: $sale" >&2; return 1 ;;
  esac
  sleep 2 # idle
  rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
  kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "$label: did not stop within 30 s of SIGTERM" >&2; return 1; fi
  wait "$pid" || { echo "$label: exit status $?" >&2; return 1; }
  printf '%-16s start-to-ready %5d ms   idle RSS %6d KiB   sale ok\n' "$label" "$ready" "$rss"
}

run_target() { "$qemu" -L "/usr/$prefix" "$binary" "$@"; }

echo "== $arch: $binary ($(stat -c %s "$binary") bytes)"
run_target --version

# The example configuration names a token file and a token variable: give it both.
mkdir -p "$work/tokens"
echo "smoke-token-pos1-0123456789" >"$work/tokens/pos1"
# and the broker's TLS files, which `config check` reads and verifies (chain, key, CN = store id).
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=smoke CA" \
  -keyout "$work/tls/ca.key" -out "$work/tls/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=s001" \
  -keyout "$work/tls/store.key" -out "$work/tls/store.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$work/tls/ext"
openssl x509 -req -in "$work/tls/store.csr" -CA "$work/tls/ca.pem" -CAkey "$work/tls/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/tls/ext" -out "$work/tls/store.pem" 2>/dev/null
sed -e "s#/etc/storenode/tokens/pos1#$work/tokens/pos1#" -e "s#/etc/storenode/tls/#$work/tls/#" \
  config/storenode.example.toml >"$work/example.toml"
STORENODE_TOKEN_POS2=smoke-token-pos2-0123456789 run_target --config "$work/example.toml" config check

run_node "$arch-qemu" "$qemu" -L "/usr/$prefix" "$binary"
if [ "${2:-}" = native ]; then
  native="$target_dir/$profile/storenode"
  [ -x "$native" ] || cargo build --locked --profile "$profile" --bin storenode
  run_node "native" "$native"
fi
echo "smoke test passed"
