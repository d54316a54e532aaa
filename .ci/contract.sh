#!/usr/bin/env bash
# The API contract, tested by a client we did not write: Schemathesis (PyPI) reads the
# OpenAPI document the demo store node serves and sends it generated requests, valid and
# invalid, checking every reply against the document (status codes, content types, schemas,
# no 5xx, invalid data refused, valid data accepted).
#
#   .ci/contract.sh path/to/storenode      # bounded: about 2 minutes of testing
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
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" demo --single --listen "127.0.0.1:$port" --data-dir "$work/data" --seconds 600 \
  >"$work/node.log" 2>&1 &
node=$!
cleanup() { kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

# /v1/events is an endless Server-Sent Events stream: nothing a request/response fuzzer can
# judge (the device tests cover it). The demo token is public on purpose (loopback only).
status=0
"$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run \
  "http://127.0.0.1:$port/v1/openapi.json" --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer demo-token-pos1-0123456789" \
  --checks all --exclude-path /v1/events \
  --max-examples 20 --max-time 120 --request-timeout 10 \
  --seed 1 --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- node log (last 50 lines)" >&2
  tail -50 "$work/node.log" >&2
fi
exit "$status"
