#!/usr/bin/env bash
# scripts/openai_json_check.sh: `response_format` (constrained decoding) through the official
# `openai` Python client. Starts bitnet-server on the embedded model on 127.0.0.1 (a free
# port), runs scripts/openai_json_check.py, then stops the server with SIGTERM.
# Called by scripts/openai_client_check.sh (which passes its binary in BITNET_SERVER_BIN);
# runs alone too.
#
# Python: `python3` when it imports openai and jsonschema (the Nix check's), else the venv
# under target/openai-venv, with openai and jsonschema from PyPI added when missing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

if python3 -c 'import openai, jsonschema' 2>/dev/null; then
  PY=python3
else
  VENV="$ROOT/target/openai-venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import openai, jsonschema' 2>/dev/null \
    || "$VENV/bin/pip" install -q openai jsonschema
  PY="$VENV/bin/python"
fi

if [ -n "${BITNET_SERVER_BIN:-}" ]; then
  BIN=$BITNET_SERVER_BIN
else
  cargo build -q -p bitnet-server --locked
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bitnet-server"
fi

WORK=$(mktemp -d)
KEY="openai-json-check-key"
"$BIN" --host 127.0.0.1 --port 0 --threads 1 --api-key "$KEY" \
  >"$WORK/stdout" 2>"$WORK/server.log" &
PID=$!
cleanup() {
  kill -9 "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
  grep -qs '^bitnet-server listening on ' "$WORK/stdout" && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "server exited early" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^bitnet-server listening on //p' "$WORK/stdout")
[ -n "$URL" ] || { cat "$WORK/server.log" >&2; echo "server did not report its address" >&2; exit 1; }
for _ in $(seq 1 600); do
  curl -sf "$URL/ready" >/dev/null 2>&1 && break
  "$PY" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/ready', timeout=2)" "$URL" 2>/dev/null && break
  sleep 0.1
done
echo "bitnet-server (embedded model) at $URL (pid $PID)"

status=0
"$PY" scripts/openai_json_check.py --base-url "$URL/v1" --api-key "$KEY" || status=$?

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
trap 'rm -rf "$WORK"' EXIT
if [ "$rc" -ne 0 ]; then
  echo "bitnet-server exited with $rc after SIGTERM (expected 0)" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
fi
exit "$status"
