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

. scripts/lib/server.sh
client_python openai jsonschema

server_bin
LOG=$(mktemp)
KEY="openai-json-check-key"
server_start "$LOG" --threads 1 --api-key "$KEY"
server_wait_ready
echo "bitnet-server (embedded model) at $URL (pid $PID)"

status=0
"$PY" scripts/openai_json_check.py --base-url "$URL/v1" --api-key "$KEY" || status=$?
server_stop "$LOG" || exit 1
rm -f "$LOG"
exit "$status"
