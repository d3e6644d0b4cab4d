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

. scripts/lib/server.sh
client_python openai

server_bin
LOG=$(mktemp)
KEY="openai-check-key"
server_start "$LOG" --model fixtures/tiny-bitnet/i2s/model-i2_s.gguf --threads 1 --api-key "$KEY"
echo "bitnet-server at $URL (pid $PID)"

status=0
"$PY" scripts/openai_client_check.py --base-url "$URL/v1" --api-key "$KEY" || status=$?
server_stop "$LOG" || exit 1
rm -f "$LOG"
echo "bitnet-server exited 0 after SIGTERM"

# response_format (constrained decoding) on the embedded model, same binary.
# bash, not the #! line: the Nix sandbox has no /usr/bin/env.
BITNET_SERVER_BIN="$BIN" bash scripts/openai_json_check.sh || status=$?
exit "$status"
