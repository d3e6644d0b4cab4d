#!/usr/bin/env bash
# Interop: bitnet-hub and Python's `huggingface_hub` (PyPI, the Hugging Face Hub's reference
# client) share one cache: each finds what the other downloaded from a stand-in Hub on
# 127.0.0.1 (crates/bitnet-hub/tests/python_cache.rs).
#
# Run by `scripts/ci-local.sh interop` with PYTHON set to its venv; installs huggingface_hub
# into that venv (not machine-wide) when it is missing, for this check only.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import huggingface_hub' 2>/dev/null; then
  echo "hf_cache_interop: installing huggingface_hub into $("$PYTHON" -c 'import sys; print(sys.prefix)') (the reference Hub client this check compares with)" >&2
  "$PYTHON" -m pip install -q "huggingface_hub>=1.0"
fi
# --workspace: the features of the workspace-wide test build, so nothing is compiled again
# after `scripts/ci-local.sh workspace` (`-p bitnet-hub` alone would resolve other ones).
HUB_PYTHON="$PYTHON" cargo test -q --workspace --locked --test python_cache
