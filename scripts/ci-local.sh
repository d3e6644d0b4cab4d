#!/usr/bin/env bash
# scripts/ci-local.sh MODE [MODE ...]: the project's checks, without Nix.
#
# The Nix flake runs the same checks as separate derivations (see flake.nix and
# nix/checks/); this script is how a machine without Nix (a developer's, or CI
# in .ci/run) runs them. Each mode installs what it needs when it is missing
# (rustup toolchains, cargo tools, Debian and PyPI packages), so a fresh
# machine needs nothing but this script.
#
# Modes:
#   workspace        clean build, nextest (ci profile), clippy -D warnings,
#                    fmt check, docs with -D warnings, MSRV (1.89.0) build
#   nextest          the test suite only (cargo nextest, ci profile)
#   lint             clippy -D warnings and fmt check only
#   deny             cargo deny check licenses bans sources
#   interop          Python `gguf` package reads our GGUF output (scripts/interop/)
#   kernels-aarch64  cross-build bitnet-kernels for aarch64, run its tests under qemu-user
#   nix-eval         evaluate the flake with ../shared/nix-eval when the snapshots exist
#   all              every mode above, in the order CI runs them
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
MSRV=1.89.0
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_INCREMENTAL=0
export RUSTC_WRAPPER=""

log() { printf '\n==> %s\n' "$*" >&2; }

# --- installers: each checks first, so a prepared machine does nothing ---

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_nextest() {
  command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
}

ensure_msrv() {
  rustup toolchain list | grep -q "^$MSRV" ||
    rustup toolchain install "$MSRV" --profile minimal
}

ensure_components() {
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
}

ensure_deny() {
  command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
}

VENV="$ROOT/target/ci-venv"
ensure_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -c 'import gguf, numpy' 2>/dev/null ||
    "$VENV/bin/pip" install -q "gguf>=0.17" numpy "$@"
}

# --- modes ---

mode_nextest() {
  ensure_nextest
  log "cargo nextest (profile ci)"
  cargo nextest run --workspace --all-targets --profile ci --locked
  log "doc tests"
  cargo test --workspace --doc --locked
}

mode_lint() {
  ensure_components
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
}

mode_doc() {
  log "cargo doc (RUSTDOCFLAGS=-D warnings)"
  RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
}

mode_msrv() {
  ensure_msrv
  log "MSRV build with Rust $MSRV"
  cargo "+$MSRV" build --workspace --locked --target-dir target/msrv
}

mode_workspace() {
  log "clean build"
  cargo clean -q
  cargo build --workspace --all-targets --locked
  mode_nextest
  mode_lint
  mode_doc
  mode_msrv
}

mode_deny() {
  ensure_deny
  log "cargo deny check licenses bans sources"
  cargo deny --locked check licenses bans sources
}

mode_interop() {
  ensure_python
  local found=0
  for s in scripts/interop/*.sh; do
    [ -e "$s" ] || continue
    found=1
    log "interop: $s"
    PYTHON="$VENV/bin/python" bash "$s"
  done
  [ $found -eq 1 ] || log "interop: no scripts under scripts/interop/ yet"
}

mode_kernels_aarch64() {
  apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  rustup target list --installed | grep -q aarch64-unknown-linux-gnu ||
    rustup target add aarch64-unknown-linux-gnu
  log "bitnet-kernels on aarch64 (NEON) under qemu-user"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test -p bitnet-kernels --target aarch64-unknown-linux-gnu --locked --target-dir target/aarch64
}

mode_nix_eval() {
  local kit="$ROOT/../shared/nix-eval"
  if [ -z "${MIRROR:-}" ] || [ ! -x "$kit/validate-crane-flake.sh" ]; then
    log "nix-eval: SKIPPED (set MIRROR to the folder holding the crane, rust-overlay and nixpkgs.lib snapshots; see ../shared/nix-eval/README.md)"
    return 0
  fi
  log "nix-eval: validate-crane-flake.sh and lint-nix.sh"
  "$kit/validate-crane-flake.sh" "$ROOT"
  "$kit/lint-nix.sh" "$ROOT"
}

run_mode() {
  case "$1" in
    workspace) mode_workspace ;;
    nextest) mode_nextest ;;
    lint) mode_lint ;;
    doc) mode_doc ;;
    msrv) mode_msrv ;;
    deny) mode_deny ;;
    interop) mode_interop ;;
    kernels-aarch64) mode_kernels_aarch64 ;;
    nix-eval) mode_nix_eval ;;
    all)
      mode_workspace
      mode_deny
      mode_interop
      mode_kernels_aarch64
      mode_nix_eval
      ;;
    *)
      echo "ci-local.sh: unknown mode '$1' (see the header of $0 for the list)" >&2
      exit 2
      ;;
  esac
}

[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2; }
start=$(date +%s)
for m in "$@"; do run_mode "$m"; done
log "ci-local.sh $*: all passed in $(( $(date +%s) - start ))s"
