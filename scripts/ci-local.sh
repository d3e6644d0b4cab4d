#!/usr/bin/env bash
# scripts/ci-local.sh MODE [MODE ...]: the project's checks, without Nix.
#
# The Nix flake runs the same checks as separate derivations (see flake.nix and
# nix/checks/); this script is how a machine without Nix (a developer's, or CI
# in .ci/run) runs them. Each mode installs what it needs when it is missing
# (the MSRV toolchain, cargo tools, Debian and PyPI packages), so a fresh
# machine needs nothing but this script and rustup; rustup takes the toolchain
# from rust-toolchain.toml, the one the Nix checks use too.
#
# Modes:
#   workspace        clean build, nextest (ci profile), clippy -D warnings,
#                    fmt check, docs with -D warnings, MSRV (1.89.0) check
#   nextest          the test suite only (cargo nextest, ci profile)
#   lint             clippy -D warnings and fmt check only
#   msrv             every target and feature compiles with Rust 1.89.0
#   deny             cargo deny check advisories licenses bans sources
#   audit            cargo audit (RustSec), ignores as in deny.toml and unexpired
#   interop          Python `gguf` package reads our GGUF output (scripts/interop/)
#   kernels-aarch64  cross-build bitnet-kernels for aarch64, run its tests under qemu-user
#   bitnet-server-receipts  server feature builds, receipt/tuning tests, and the
#                    official OpenAI Python client against the real binary (with
#                    response_format checked by jsonschema: both from PyPI into a venv
#                    under target/ unless python3 has them)
#   fuzz-server      bitnet-server's fuzz targets (OpenAI request parser, chat templates)
#                    for FUZZ_SECONDS each (default 20) on nightly, from the kept inputs
#   fuzz-loaders     cargo-fuzz (nightly) on the GGUF parser and the GGUF and checkpoint
#                    model loaders, FUZZ_SECONDS (default 20) each, from the kept inputs
#   k8s              kubernetes-validate --strict on deploy/kubernetes/
#   nix-eval         evaluate the flake with ../shared/nix-eval when the snapshots exist
#   nix-rehearse     run every Nix check's own commands as its derivation does, outside
#                    Nix: no network, vendored sources, the locked toolchain, no
#                    rustup/apt/pip (scripts/nix_rehearse.py; needs what nix-eval needs;
#                    NIX_REHEARSE_ARGS passes e.g. "--only clippy,audit" or "--graph")
#   all              every mode above, in the order CI runs them
#
# CI_CARGO_PROFILE: the cargo profile of the bitnet-server-receipts builds, as crane's
# cargoWithProfile reads CARGO_PROFILE (empty: dev; `release`: --release). The Nix check
# sets it so its builds find the dependency layer's.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
MSRV=1.89.0
# kubernetes-validate (PyPI) and the Kubernetes versions the manifests must be valid for:
# the oldest with the preStop `sleep` action on by default, and the newest it knows.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSIONS="1.30.0 1.37.0"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_INCREMENTAL=0
export RUSTC_WRAPPER=""

log() { printf '\n==> %s\n' "$*" >&2; }

# Modes (or parts) that could not run here, with why: listed again at the end, so a run that
# skipped something never ends on a bare "all passed".
SKIPPED=()
skip() {
  SKIPPED+=("$1: $2")
  log "$1: SKIPPED: $2"
}

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
  # rust-toolchain.toml lists clippy and rustfmt, so rustup has them; inside Nix they
  # come from the toolchain derivation and there is no rustup.
  command -v cargo-clippy >/dev/null || rustup component add clippy
  command -v rustfmt >/dev/null || rustup component add rustfmt
}

# cargo SUBCOMMAND ARGS with the profile CI_CARGO_PROFILE names, the way crane's
# cargoWithProfile does: empty for cargo's default, `release` for --release.
cargo_p() {
  local sub=$1
  shift
  case "${CI_CARGO_PROFILE:-}" in
    "") cargo "$sub" "$@" ;;
    release) cargo "$sub" --release "$@" ;;
    *) cargo "$sub" --profile "$CI_CARGO_PROFILE" "$@" ;;
  esac
}

ensure_audit() {
  command -v cargo-audit >/dev/null || cargo install cargo-audit --locked
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
  # The same command as the Nix msrv check (nix/lib.nix msrvCommand): check mode is
  # what holds the sources to Rust $MSRV; every target and feature.
  local args=(check --workspace --all-targets --all-features --locked --target-dir target/msrv)
  if [ -n "${CARGO_MSRV:-}" ]; then # a cargo binary of Rust $MSRV, where there is no rustup
    log "MSRV check with $CARGO_MSRV"
    RUSTC="$(dirname "$CARGO_MSRV")/rustc" "$CARGO_MSRV" "${args[@]}"
    return
  fi
  ensure_msrv
  log "MSRV check with Rust $MSRV"
  cargo "+$MSRV" "${args[@]}"
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

# Each advisory ignore in deny.toml carries "Expires YYYY-MM-DD"; fail on one without,
# on an expired one, and when .cargo/audit.toml ignores other ids than deny.toml.
# (The Nix audit check does the same against the pinned database's date.)
check_advisory_ignores() {
  local today ids audit_ids bad=0 id until
  today=$(date -u +%Y-%m-%d)
  ids=$(sed -n 's/^id = "\(RUSTSEC-[0-9-]*\)"$/\1/p' deny.toml | sort)
  audit_ids=$(sed -n '/^ignore = \[/,/\]/p' .cargo/audit.toml | grep -o 'RUSTSEC-[0-9-]*' | sort)
  if [ "$ids" != "$audit_ids" ]; then
    log "advisory ignores differ: deny.toml [$(echo $ids)], .cargo/audit.toml [$(echo $audit_ids)]"
    return 1
  fi
  for id in $ids; do
    until=$(sed -n "/^id = \"$id\"/,/^\[/p" deny.toml | grep -o 'Expires [0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' | head -n1 | cut -d' ' -f2)
    if [ -z "$until" ]; then
      log "deny.toml: the ignore of $id has no \"Expires YYYY-MM-DD\" in its reason"
      bad=1
    elif [[ "$until" < "$today" ]]; then
      log "deny.toml: the ignore of $id expired on $until: upgrade away from the crate or argue the ignore again"
      bad=1
    fi
  done
  return $bad
}

# The RustSec database: ADVISORY_DB (a checkout, e.g. the one flake.lock pins), else one that
# cargo-deny fetched before ($CARGO_HOME/advisory-dbs), else the network copy if GitHub answers.
# Machines that reach only the package registries (CI here) have none of these: the advisory
# checks are then skipped, loudly and in the final summary, and the rest still runs.
advisory_db() {
  if [ -n "${ADVISORY_DB:-}" ] && [ -d "$ADVISORY_DB/crates" ]; then
    echo "$ADVISORY_DB"
    return 0
  fi
  local d
  for d in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/; do
    [ -d "$d/crates" ] && { echo "${d%/}"; return 0; }
  done
  if timeout 15 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    echo "fetch"
    return 0
  fi
  return 1
}

mode_deny() {
  ensure_deny
  check_advisory_ignores
  local db
  if db=$(advisory_db) && [ "$db" = fetch ]; then
    log "cargo deny check advisories licenses bans sources"
    cargo deny --locked check advisories licenses bans sources
  else
    # cargo-deny reads only the copy it fetched itself; an offline database is for `audit`.
    skip "deny advisories" "no network copy of the RustSec database (the audit mode checks ADVISORY_DB offline)"
    log "cargo deny check licenses bans sources"
    cargo deny --locked check licenses bans sources
  fi
}

mode_audit() {
  check_advisory_ignores
  local db
  if ! db=$(advisory_db); then
    skip "audit" "no RustSec database here (set ADVISORY_DB to a checkout of rustsec/advisory-db)"
    return 0
  fi
  ensure_audit
  log "cargo audit (advisory database: $db)"
  if [ "$db" = fetch ]; then
    cargo audit
  else
    cargo audit -n -d "$db" --ignore yanked
  fi
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
  # Evaluates (never builds) the flake offline with the kit in ../shared/nix-eval,
  # then lints the Nix files and workflows. Needs MIRROR: the folder holding the
  # fetched crane, rust-overlay and nixpkgs.lib snapshots (owner+name/repo).
  local kit=${NIX_EVAL_KIT:-"$ROOT/../shared/nix-eval"}
  if [ -z "${MIRROR:-}" ] || [ ! -x "$kit/validate-crane-flake.sh" ] ||
    [ ! -d "$MIRROR/ipetkov+crane/repo" ] || [ ! -d "$MIRROR/oxalica+rust-overlay/repo" ] ||
    [ ! -d "$MIRROR/nix-community+nixpkgs.lib/repo" ]; then
    skip "nix-eval" "needs MIRROR=<folder with ipetkov+crane, oxalica+rust-overlay, nix-community+nixpkgs.lib snapshots> and $kit (see its README.md)"
    return 0
  fi
  # The kit's nixpkgs stub lacks dockerTools (the OCI image) and darwin.signingUtils
  # (crane on aarch64-darwin). Run a private copy of the kit whose stub adds them
  # from nix/eval/nixpkgs-stub-extras.nix (evaluation-only, see that file).
  local kitcopy=${XDG_CACHE_HOME:-$HOME/.cache}/nix-eval/kit-bitnet
  rm -rf "$kitcopy" && mkdir -p "$kitcopy"
  cp -r "$kit/." "$kitcopy/"
  mv "$kitcopy/nixpkgs-stub/default.nix" "$kitcopy/nixpkgs-stub/stub-base.nix"
  cp "$ROOT/nix/eval/nixpkgs-stub-extras.nix" "$kitcopy/nixpkgs-stub/bitnet-extras.nix"
  cat >"$kitcopy/nixpkgs-stub/default.nix" <<'NIX'
args: import ./stub-base.nix (args // { overlays = [ (import ./bitnet-extras.nix) ] ++ (args.overlays or [ ]); })
NIX
  # In a git worktree, .git is a file naming a git dir outside the tree; Nix reads the
  # flake through libgit2 and needs that dir inside the kit's chroot as well.
  local gitdir
  gitdir=$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)
  case "$gitdir" in
    "$ROOT"/*) ;;
    *)
      sed -i "s|for d in \"\$W\" \"\$F\"; do|for d in \"\$W\" \"\$F\" \"$gitdir\"; do|" "$kitcopy/validate-crane-flake.sh"
      grep -qF "\"$gitdir\"; do" "$kitcopy/validate-crane-flake.sh" ||
        { log "nix-eval: could not add the git dir $gitdir to the kit's mounts"; return 1; }
      ;;
  esac
  # advisory-db (the audit check's database) is a fourth input: the fetched
  # snapshot when there is one, else an empty stand-in (evaluation needs a path only).
  local w=${NIXCHECK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nix-eval/check}
  rm -rf "$w/inputs/advisory-db" && mkdir -p "$w/inputs/advisory-db"
  if [ -d "$MIRROR/rustsec+advisory-db/repo" ]; then
    git --git-dir="$MIRROR/rustsec+advisory-db/repo" archive HEAD | tar -x -C "$w/inputs/advisory-db"
  else
    log "nix-eval: no rustsec+advisory-db snapshot; the audit check evaluates against an empty stand-in"
  fi
  log "nix-eval: validate-crane-flake.sh (evaluation only: show, check --no-build --all-systems, drvPath, lock)"
  NIXCHECK_DIR=$w EXTRA_OVERRIDES="--override-input advisory-db path:$w/inputs/advisory-db ${EXTRA_OVERRIDES:-}" \
    "$kitcopy/validate-crane-flake.sh" "$ROOT"
  log "nix-eval: lint-nix.sh (parse, deadnix, nixpkgs-fmt --check, actionlint)"
  FORMAT_CHECK=1 "$kit/lint-nix.sh" "$ROOT"
}

mode_bitnet_server_receipts() {
  # bitnet-server: lint, docs, feature combinations, the receipt tests (happy and guard
  # path) and the official OpenAI Python client against the real binary. The MSRV of
  # every feature is mode msrv's. The Nix check runs this mode in its sandbox, with
  # CI_CARGO_PROFILE=release; its dependency layer (nix/lib.nix) ran these invocations.
  ensure_components
  log "bitnet-server: clippy (cpu)"
  cargo_p clippy -p bitnet-server --no-deps --all-targets --locked -- -D warnings
  log "bitnet-server: fmt"
  cargo fmt -p bitnet-server -- --check
  log "bitnet-server: docs"
  RUSTDOCFLAGS="-D warnings" cargo_p doc -p bitnet-server --no-deps --all-features --locked
  local f
  for f in cpu,receipts cpu,receipts,tuning; do
    log "bitnet-server: clippy --features $f"
    cargo_p clippy -p bitnet-server --no-deps --all-targets --no-default-features --features "$f" --locked -- -D warnings
  done
  log "bitnet-server: receipt tests (happy and guard path) and tuning"
  cargo_p test -p bitnet-server --no-default-features --features cpu,receipts,tuning --locked \
    --test receipts --test tuning
  log "bitnet-server: OpenAI Python client (scripts/openai_client_check.sh)"
  if ! python3 -c 'import openai' 2>/dev/null; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  fi
  BITNET_SERVER_FEATURES=cpu,receipts,tuning scripts/openai_client_check.sh
}

ensure_cargo_fuzz() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
}

mode_fuzz_loaders() {
  # Each target runs for a bounded time from its kept inputs (replayed by the normal tests,
  # see crates/*/tests/*regressions.rs); new corpus entries go to the git-ignored corpus/.
  # A crash fails the mode and leaves the input in fuzz/artifacts/ to add to the kept ones.
  ensure_cargo_fuzz
  local secs=${FUZZ_SECONDS:-20}
  local spec dir target kept
  for spec in bitnet-gguf:read:tests/regressions \
    bitnet-engine:gguf_model:fuzz/regressions/gguf_model \
    bitnet-engine:checkpoint_model:fuzz/regressions/checkpoint_model; do
    IFS=: read -r dir target kept <<<"$spec"
    log "fuzz-loaders: $dir $target for ${secs}s"
    mkdir -p "crates/$dir/fuzz/corpus/$target"
    (cd "crates/$dir/fuzz" &&
      cargo +nightly fuzz run -O "$target" "corpus/$target" "../$kept" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
  done
}

mode_fuzz_server() {
  # cargo-fuzz targets of bitnet-server, each for a bounded time, starting from the inputs kept
  # in the repo (tests/fuzz_regressions/, also replayed by `cargo test`). A crash fails the mode.
  local secs=${FUZZ_SECONDS:-20} t
  ensure_cargo_fuzz
  for t in openai_request chat_template; do
    log "fuzz-server: $t for ${secs}s"
    mkdir -p "crates/bitnet-server/fuzz/corpus/$t"
    cp -n crates/bitnet-server/tests/fuzz_regressions/$t/* "crates/bitnet-server/fuzz/corpus/$t/"
    (cd crates/bitnet-server/fuzz && cargo +nightly fuzz run "$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10)
  done
}

mode_k8s() {
  # kubernetes-validate checks each manifest against the Kubernetes OpenAPI schemas it
  # ships (no cluster needed); --strict also rejects fields the schema does not know.
  local venv="$ROOT/target/k8s-venv"
  [ -x "$venv/bin/kubernetes-validate" ] || {
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  }
  local k
  for k in $KUBERNETES_VERSIONS; do
    log "kubernetes-validate --strict deploy/kubernetes/*.yaml (Kubernetes $k)"
    "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$k" deploy/kubernetes/*.yaml
  done
}

mode_nix_rehearse() {
  # Every Nix check's phases, read from its derivation, run the way the sandbox would:
  # see scripts/nix_rehearse.py. It evaluates with the nix-eval kit, so nix-eval runs
  # first (and skips, loudly, without MIRROR). The host stands in for the tools the
  # derivations declare, so they are installed here, outside the sandbox.
  local kit=${NIX_EVAL_KIT:-"$ROOT/../shared/nix-eval"}
  if [ -z "${MIRROR:-}" ] || [ ! -x "$kit/validate-crane-flake.sh" ]; then
    skip "nix-rehearse" "needs MIRROR and $kit, as nix-eval does"
    return 0
  fi
  mode_nix_eval
  ensure_nextest
  ensure_deny
  ensure_audit
  command -v rsync >/dev/null || apt_install rsync
  command -v ip >/dev/null || apt_install iproute2
  log "nix-rehearse: the Nix checks' phases, sandboxed, outside Nix"
  NIX_EVAL_KIT=$kit python3 scripts/nix_rehearse.py ${NIX_REHEARSE_ARGS:-}
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
    nix-rehearse) mode_nix_rehearse ;;
    audit) mode_audit ;;
    k8s) mode_k8s ;;
    bitnet-server-receipts) mode_bitnet_server_receipts ;;
    fuzz-loaders) mode_fuzz_loaders ;;
    fuzz-server) mode_fuzz_server ;;
    all)
      mode_workspace
      mode_deny
      mode_audit
      mode_interop
      mode_kernels_aarch64
      mode_bitnet_server_receipts
      FUZZ_SECONDS=${FUZZ_SECONDS:-10} mode_fuzz_loaders
      FUZZ_SECONDS=${FUZZ_SECONDS:-10} mode_fuzz_server
      mode_k8s
      mode_nix_eval
      mode_nix_rehearse
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
if [ ${#SKIPPED[@]} -gt 0 ]; then
  log "skipped (nothing was checked for these):"
  printf '    %s\n' "${SKIPPED[@]}" >&2
fi
log "ci-local.sh $*: all passed in $(( $(date +%s) - start ))s (${#SKIPPED[@]} skipped)"
