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

. scripts/lib/server.sh
server_bin
KEY="webui-check-key"
# No --model: the embedded model, as a user's first `bitnet-server` runs it.
server_start "$OUT/server.log" --threads 1 --api-key "$KEY"
echo "bitnet-server at $URL (pid $PID)"

status=0
node scripts/webui/test.mjs --base-url "$URL" --api-key "$KEY" --out "$OUT" \
  --chromium "${CHROMIUM:-/usr/bin/chromium}" || status=$?
[ "$status" -eq 0 ] || tail -20 "$OUT/server.log" >&2
server_stop "$OUT/server.log" || exit 1
echo "bitnet-server exited 0 after SIGTERM; screenshots: $OUT/chat.png, $OUT/chat-stopped.png"
exit "$status"
