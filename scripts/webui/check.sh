#!/usr/bin/env bash
# scripts/webui/check.sh: bitnet-server's chat page in a real headless browser. Builds
# bitnet-server, starts it on 127.0.0.1 (a free port) with the embedded model and an API key,
# runs test.mjs (playwright-core driving /usr/bin/chromium), then stops the server with
# SIGTERM and requires a graceful exit 0. Screenshots land in target/webui/ (chat.png,
# chat-stopped.png); the server's log too when something failed.
#
# Needs chromium, node (>= 18) and `npm ci` done in this directory: scripts/ci-local.sh webui
# installs them (saying so first) and calls this.
#
# Environment: CHROMIUM (the browser, default /usr/bin/chromium); BITNET_SERVER_BIN (use this
# binary instead of building one); CI_CARGO_PROFILE (the cargo profile to build with, as in
# scripts/ci-local.sh: empty for dev, `release`, or a name).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT="$ROOT/target/webui"
mkdir -p "$OUT"

if [ -n "${BITNET_SERVER_BIN:-}" ]; then
  BIN=$BITNET_SERVER_BIN
else
  case "${CI_CARGO_PROFILE:-}" in
    "" | dev) profile_args=() dir=debug ;;
    release) profile_args=(--release) dir=release ;;
    *) profile_args=(--profile "$CI_CARGO_PROFILE") dir=$CI_CARGO_PROFILE ;;
  esac
  cargo build -q "${profile_args[@]}" -p bitnet-server --locked
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/bitnet-server"
fi

WORK=$(mktemp -d)
KEY="webui-check-key"
# No --model: the embedded model, as a user's first `bitnet-server` runs it.
"$BIN" --host 127.0.0.1 --port 0 --threads 1 --api-key "$KEY" >"$WORK/stdout" 2>"$OUT/server.log" &
PID=$!
cleanup() {
  kill -9 "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
  grep -q '^bitnet-server listening on ' "$WORK/stdout" && break
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/server.log" >&2; echo "server exited early" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^bitnet-server listening on //p' "$WORK/stdout")
[ -n "$URL" ] || { cat "$OUT/server.log" >&2; echo "server did not report its address" >&2; exit 1; }
echo "bitnet-server at $URL (pid $PID)"

status=0
node scripts/webui/test.mjs --base-url "$URL" --api-key "$KEY" --out "$OUT" \
  --chromium "${CHROMIUM:-/usr/bin/chromium}" || status=$?
[ "$status" -eq 0 ] || tail -20 "$OUT/server.log" >&2

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
trap 'rm -rf "$WORK"' EXIT
if [ "$rc" -ne 0 ]; then
  echo "bitnet-server exited with $rc after SIGTERM (expected 0)" >&2
  tail -20 "$OUT/server.log" >&2
  exit 1
fi
echo "bitnet-server exited 0 after SIGTERM; screenshots: $OUT/chat.png, $OUT/chat-stopped.png"
exit "$status"
