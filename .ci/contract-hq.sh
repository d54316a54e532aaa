#!/usr/bin/env bash
# HQ's API contract, as .ci/contract.sh checks the store's: Schemathesis reads the OpenAPI
# document a real `storenode hq` serves (its embedded broker, an empty chain) and sends it
# generated requests, valid and invalid, checking every reply against the document.
#
#   .ci/contract-hq.sh path/to/storenode      # bounded: about a minute of testing
set -euo pipefail
bin="$(realpath "$1")"
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv="${CARGO_TARGET_DIR:-target}/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
broker="$(free_port)"
token="contract-hq-token-0123456789"
cat >"$work/hq.toml" <<TOML
[hq]
tenant = "contract"
data_dir = "$work/data"
listen = "127.0.0.1:$port"
token = "$token"
embedded_broker = "127.0.0.1:$broker"
TOML
"$bin" --config "$work/hq.toml" hq >"$work/hq.log" 2>&1 &
hq=$!
cleanup() { kill "$hq" 2>/dev/null || true; wait "$hq" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done

status=0
"$venv/bin/schemathesis" --config-file .ci/schemathesis-hq.toml run \
  "http://127.0.0.1:$port/v1/openapi.json" --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $token" \
  --max-examples 10 --max-time 60 --request-timeout 10 \
  --seed 1 --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- HQ log (last 50 lines)" >&2
  tail -50 "$work/hq.log" >&2
fi
exit "$status"
