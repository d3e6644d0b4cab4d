#!/usr/bin/env bash
# scripts/openai_client_check.sh: proves the official `openai` Python client works against
# bitnet-server. Builds and starts bitnet-server on the tiny fixture on 127.0.0.1 (a free
# port), runs scripts/openai_client_check.py (which waits for /ready), then stops the
# server with SIGTERM and requires a graceful exit 0.
#
# Python: `python3` when it imports openai (the Nix check's, from nixpkgs), else a venv
# under target/ with openai from PyPI.
#
# Environment: BITNET_SERVER_FEATURES (cargo features to build with, default: the default);
# BITNET_SERVER_BIN (use this binary instead of building one); CI_CARGO_PROFILE (the cargo
# profile to build with, as in scripts/ci-local.sh: empty for dev, `release`, or a name).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

if python3 -c 'import openai' 2>/dev/null; then
  PY=python3
else
  VENV="$ROOT/target/openai-venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import openai' 2>/dev/null || "$VENV/bin/pip" install -q openai
  PY="$VENV/bin/python"
fi

if [ -n "${BITNET_SERVER_BIN:-}" ]; then
  BIN=$BITNET_SERVER_BIN
else
  case "${CI_CARGO_PROFILE:-}" in
    "" | dev) profile_args=() dir=debug ;;
    release) profile_args=(--release) dir=release ;;
    *) profile_args=(--profile "$CI_CARGO_PROFILE") dir=$CI_CARGO_PROFILE ;;
  esac
  cargo build -q "${profile_args[@]}" -p bitnet-server --locked ${BITNET_SERVER_FEATURES:+--features "$BITNET_SERVER_FEATURES"}
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/bitnet-server"
fi

WORK=$(mktemp -d)
KEY="openai-check-key"
"$BIN" --model fixtures/tiny-bitnet/i2s/model-i2_s.gguf --host 127.0.0.1 --port 0 \
  --threads 1 --api-key "$KEY" >"$WORK/stdout" 2>"$WORK/server.log" &
PID=$!
cleanup() {
  kill -9 "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
  grep -q '^bitnet-server listening on ' "$WORK/stdout" && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "server exited early" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^bitnet-server listening on //p' "$WORK/stdout")
[ -n "$URL" ] || { cat "$WORK/server.log" >&2; echo "server did not report its address" >&2; exit 1; }
echo "bitnet-server at $URL (pid $PID)"

status=0
"$PY" scripts/openai_client_check.py --base-url "$URL/v1" --api-key "$KEY" || status=$?

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
trap 'rm -rf "$WORK"' EXIT
if [ "$rc" -ne 0 ]; then
  echo "bitnet-server exited with $rc after SIGTERM (expected 0)" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
fi
echo "bitnet-server exited 0 after SIGTERM"

# response_format (constrained decoding) on the embedded model, same binary.
# bash, not the #! line: the Nix sandbox has no /usr/bin/env.
BITNET_SERVER_BIN="$BIN" bash scripts/openai_json_check.sh || status=$?
exit "$status"
