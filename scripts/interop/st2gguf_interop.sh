#!/usr/bin/env bash
# Interop: the Python `gguf` package (PyPI, llama.cpp's own reader) opens what
# bitnet-st2gguf writes from fixtures/tiny-bitnet/packed in tq2_0, tq1_0, f16 and f32 (I2_S is
# bitnet.cpp's type, unknown to upstream gguf), and its dequantised values equal the
# checkpoint's weights unpacked independently with numpy (st2gguf_interop.py).
#
# Run by `scripts/ci-local.sh interop` with PYTHON set to a venv holding gguf and numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

# The workspace-wide build (what `scripts/ci-local.sh workspace` builds, so there this is a no-op):
# `-p` alone would resolve other features for shared dependencies and compile them again.
cargo build -q --workspace --all-targets --locked
BIN=target/debug/bitnet-st2gguf
SRC=fixtures/tiny-bitnet/packed
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for t in tq2_0 tq1_0 f16 f32; do
  "$BIN" --quiet --input "$SRC" --output "$OUT/tiny-$t.gguf" --outtype "$t" --verify
done
"$PYTHON" scripts/interop/st2gguf_interop.py "$SRC" "$OUT"
