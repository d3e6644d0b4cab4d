#!/usr/bin/env bash
# Interop: bitnet-gguf against the Python `gguf` package (PyPI; llama.cpp's own reader and
# writer). Our writer's file (every metadata value type, F32, F16 and TQ2_0 tensors) is read
# by gguf.GGUFReader and compared value by value; a file written by gguf.GGUFWriter is read
# by our reader and compared the same way (gguf_interop.py).
#
# Run by `scripts/ci-local.sh interop` with PYTHON set to a venv holding gguf and numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

# The workspace-wide build (what `scripts/ci-local.sh workspace` builds, so there this is a no-op):
# `-p` alone would resolve other features for shared dependencies and compile them again.
cargo build -q --workspace --all-targets --locked
BIN=target/debug/examples/interop
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

"$BIN" write "$OUT/ours.gguf" >"$OUT/ours.json"
"$PYTHON" scripts/interop/gguf_interop.py check-ours "$OUT/ours.gguf" "$OUT/ours.json"
"$PYTHON" scripts/interop/gguf_interop.py write-theirs "$OUT/theirs.gguf"
"$BIN" dump "$OUT/theirs.gguf" >"$OUT/theirs.json"
"$PYTHON" scripts/interop/gguf_interop.py check-theirs "$OUT/theirs.json"
