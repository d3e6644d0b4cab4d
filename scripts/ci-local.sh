#!/usr/bin/env bash
# scripts/ci-local.sh [--no-install] MODE [MODE ...]: the project's checks, without Nix.
#
# The Nix flake runs the same checks as separate derivations (see flake.nix and
# nix/checks/); this script is how a machine without Nix (a developer's, or CI
# in .ci/run) runs them. rustup takes the toolchain from rust-toolchain.toml, the
# one the Nix checks use too.
#
# What a mode needs from outside the project (Debian packages, rustup toolchains,
# targets and components, cargo tools in ~/.cargo/bin) is listed before anything
# runs, with why, and then installed. With --no-install (or CI_NO_SYSTEM_INSTALL=1)
# nothing is installed: the modes that would need an install are skipped and named in
# the final summary. Python packages go into virtualenvs under target/, never
# machine-wide. Your build is left alone: the checks build into target/ as `cargo
# build` does (CI_CLEAN_BUILD=1 adds a from-scratch build in target/ci-clean, removed
# afterwards). The run ends with the time each mode took and every skipped mode.
#
# Modes:
#   workspace        build, nextest (ci profile), clippy -D warnings,
#                    fmt check, docs with -D warnings, MSRV (1.89.0) check
#   nextest          the test suite only (cargo nextest, ci profile)
#   lint             clippy -D warnings and fmt check only
#   msrv             every target and feature compiles with Rust 1.89.0
#   deny             cargo deny check advisories licenses bans sources
#   audit            cargo audit (RustSec), ignores as in deny.toml and unexpired
#   interop          Python `gguf` package reads our GGUF output; Python `huggingface_hub`
#                    and bitnet-hub share one HF cache (scripts/interop/)
#   kernels-aarch64  clippy on bitnet-kernels for aarch64 (the NEON code), cross-build it and
#                    run its tests under qemu-user
#   bitnet-server-receipts  server feature builds, receipt/tuning tests, and the
#                    official OpenAI Python client against the real binary (with
#                    response_format checked by jsonschema: both from PyPI into a venv
#                    under target/ unless python3 has them)
#   webui            bitnet-server's chat page (/) in Debian's headless chromium, driven by
#                    playwright-core (scripts/webui/): streaming, Stop, settings, API key;
#                    screenshots in target/webui/. Installs chromium (apt) when missing
#                    (skipped with CI_NO_SYSTEM_INSTALL=1)
#   fuzz             cargo-fuzz (nightly) on every target in fuzz/: the GGUF parser, the
#                    GGUF and checkpoint model loaders, the OpenAI request parser and chat
#                    templates, FUZZ_SECONDS each (default 20; 10 in `all`), two at a time,
#                    from the kept inputs
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

# What `all` runs, in order (the order CI runs them).
ALL_MODES="workspace deny audit interop kernels-aarch64 bitnet-server-receipts webui fuzz k8s nix-eval nix-rehearse"

# Modes (or parts) that could not run here, with why: listed again at the end, so a run that
# skipped something never ends on a bare "all passed".
SKIPPED=()
skip() {
  SKIPPED+=("$1: $2")
  log "$1: SKIPPED: $2"
}

# --- what modes need from outside the project ---

NO_INSTALL=${CI_NO_SYSTEM_INSTALL:-0}

# requirements MODE: one line per thing the mode needs, "KIND NAME WHY". KIND: apt (a
# Debian package), cargo (a cargo tool, `cargo install --locked`), toolchain and target
# (rustup), component (rustup; a command on PATH inside Nix), venv (python3's venv module,
# Debian's python3-venv).
requirements() {
  case "$1" in
    workspace) requirements nextest; requirements lint; requirements msrv ;;
    nextest) echo "cargo cargo-nextest the test runner" ;;
    lint) echo "component clippy lints"; echo "component rustfmt format check" ;;
    msrv) [ -n "${CARGO_MSRV:-}" ] || echo "toolchain $MSRV the MSRV check" ;;
    deny) echo "cargo cargo-deny licences, bans, sources, advisories" ;;
    audit) echo "cargo cargo-audit RustSec advisories" ;;
    interop | k8s) echo "venv python3-venv virtualenvs under target/ for the Python checks" ;;
    kernels-aarch64)
      echo "apt gcc-aarch64-linux-gnu to link the aarch64 tests"
      echo "apt libc6-dev-arm64-cross the aarch64 C library"
      echo "apt qemu-user to run the aarch64 tests"
      echo "target aarch64-unknown-linux-gnu the NEON kernels' cross build"
      ;;
    bitnet-server-receipts)
      requirements lint
      python3 -c 'import openai' 2>/dev/null || requirements interop
      ;;
    webui)
      if [ -z "${CHROMIUM:-}" ]; then
        echo "apt chromium the browser the chat page test drives"
        echo "apt fonts-dejavu-core a font for its screenshots"
      fi
      command -v node >/dev/null || echo "apt nodejs runs playwright-core"
      command -v npm >/dev/null || echo "apt npm installs playwright-core into scripts/webui/node_modules"
      ;;
    fuzz)
      echo "toolchain nightly cargo-fuzz needs it (sanitizers)"
      echo "cargo cargo-fuzz the fuzzer driver"
      ;;
    nix-rehearse)
      if [ -n "${MIRROR:-}" ]; then
        requirements nextest; requirements deny; requirements audit
        echo "apt rsync stands in for nixpkgs' rsync"
        echo "apt iproute2 the sandbox's loopback-only network"
      fi
      ;;
  esac
}

# missing KIND NAME: whether it has to be installed.
missing() {
  case "$1" in
    apt) ! dpkg -s "$2" >/dev/null 2>&1 ;;
    cargo) ! command -v "$2" >/dev/null ;;
    toolchain) ! rustup toolchain list 2>/dev/null | grep -q "^$2" ;;
    target) ! rustup target list --installed 2>/dev/null | grep -qx "$2" ;;
    component)
      case "$2" in
        clippy) ! command -v cargo-clippy >/dev/null ;;
        *) ! command -v "$2" >/dev/null ;;
      esac
      ;;
    venv) ! python3 -m venv --help >/dev/null 2>&1 ;;
  esac
}

# The modes a list of modes runs (`all` expanded).
expand_modes() {
  local m
  for m in "$@"; do
    if [ "$m" = all ]; then echo "$ALL_MODES"; else echo "$m"; fi
  done
}

# Before anything runs: what the requested modes will install, and why.
preflight() {
  local m kind name why lines=()
  for m in $(expand_modes "$@"); do
    while read -r kind name why; do
      [ -n "$kind" ] || continue
      missing "$kind" "$name" && lines+=("$kind $name ($m: $why)")
    done < <(requirements "$m")
  done
  [ ${#lines[@]} -gt 0 ] || return 0
  if [ "$NO_INSTALL" = 1 ]; then
    log "--no-install: these are missing, so the modes that need them will be skipped:"
  else
    log "installing outside the project (--no-install skips the modes that need these instead):"
  fi
  printf '    %s\n' "${lines[@]}" | sort -u >&2
}

# require MODE: installs what MODE needs; with --no-install, false (and the mode is
# recorded as skipped) when something is missing.
require() {
  local kind name why lacking=()
  while read -r kind name why; do
    [ -n "$kind" ] || continue
    missing "$kind" "$name" && lacking+=("$kind $name")
  done < <(requirements "$1")
  [ ${#lacking[@]} -gt 0 ] || return 0
  if [ "$NO_INSTALL" = 1 ]; then
    skip "$1" "needs $(IFS=,; echo "${lacking[*]}") (not installed; --no-install)"
    return 1
  fi
  local item
  for item in "${lacking[@]}"; do
    read -r kind name <<<"$item"
    log "installing $kind $name (for $1)"
    case "$kind" in
      apt) apt_install "$name" ;;
      cargo) cargo install "$name" --locked ;;
      toolchain) rustup toolchain install "$name" --profile minimal ;;
      target) rustup target add "$name" ;;
      component) rustup component add "$name" ;;
      venv) apt_install python3-venv ;;
    esac
  done
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
  require nextest || return 0
  log "cargo nextest (profile ci)"
  cargo nextest run --workspace --all-targets --profile ci --locked
  log "doc tests"
  cargo test --workspace --doc --locked
}

mode_lint() {
  require lint || return 0
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
  require msrv || return 0
  log "MSRV check with Rust $MSRV"
  cargo "+$MSRV" "${args[@]}"
}

mode_workspace() {
  # Builds into target/ as a developer's `cargo build` does (CI's clone is fresh, so there
  # it is a clean build); CI_CLEAN_BUILD=1 also builds from scratch in a directory of its
  # own, leaving target/ alone.
  if [ "${CI_CLEAN_BUILD:-0}" = 1 ]; then
    log "clean build (target/ci-clean, removed afterwards)"
    rm -rf target/ci-clean
    cargo build --workspace --all-targets --locked --target-dir target/ci-clean
    rm -rf target/ci-clean
  fi
  log "build"
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
  require deny || return 0
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
  require audit || return 0
  log "cargo audit (advisory database: $db)"
  if [ "$db" = fetch ]; then
    cargo audit
  else
    cargo audit -n -d "$db" --ignore yanked
  fi
}

mode_interop() {
  require interop || return 0
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
  require kernels-aarch64 || return 0
  # The NEON code compiles only for aarch64, so the workspace's clippy never sees it.
  log "bitnet-kernels on aarch64: clippy -D warnings (the NEON backend)"
  cargo clippy -p bitnet-kernels --target aarch64-unknown-linux-gnu --all-targets --locked \
    --target-dir target/aarch64 -- -D warnings
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
  require bitnet-server-receipts || return 0
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
  # bash, not the #! line: the Nix sandbox has no /usr/bin/env.
  BITNET_SERVER_FEATURES=cpu,receipts,tuning bash scripts/openai_client_check.sh
}

mode_webui() {
  # The chat page in a real browser (scripts/webui/check.sh): Debian's chromium (the
  # browser the test drives; playwright's own browser downloads are not used) with
  # fonts-dejavu-core (a font for the screenshots), and Node.js with npm, from apt (see
  # `requirements`); playwright-core from npm into scripts/webui/node_modules only (npm ci,
  # from package-lock.json).
  require webui || return 0
  local chromium=${CHROMIUM:-/usr/bin/chromium}
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 18 ]; then
    log "webui: node $(node --version) is too old: playwright-core needs Node.js 18 or newer"
    return 1
  fi
  log "webui: npm ci (playwright-core into scripts/webui/node_modules, no browser download)"
  (cd scripts/webui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  log "webui: the chat page in headless $("$chromium" --version 2>/dev/null | head -n1)"
  # The server's features default to the OpenAI check's (bitnet-server-receipts), so `all`
  # builds that binary once.
  CHROMIUM=$chromium BITNET_SERVER_FEATURES=${BITNET_SERVER_FEATURES:-cpu,receipts,tuning} \
    bash scripts/webui/check.sh
}

# The fuzz targets (fuzz/, one cargo-fuzz project) and the folder of each one's kept inputs:
# the seeds and every input that once crashed or hung it, replayed by the normal tests.
FUZZ_TARGETS="read:crates/bitnet-gguf/tests/regressions
gguf_model:crates/bitnet-engine/tests/fuzz_regressions/gguf_model
checkpoint_model:crates/bitnet-engine/tests/fuzz_regressions/checkpoint_model
openai_request:crates/bitnet-server/tests/fuzz_regressions/openai_request
chat_template:crates/bitnet-server/tests/fuzz_regressions/chat_template"

mode_fuzz() {
  # One sanitizer build of every target, then each target for FUZZ_SECONDS from its kept
  # inputs, two at a time (libFuzzer runs one process a target); new corpus entries go to the
  # git-ignored fuzz/corpus/. A crash fails the mode and leaves the input in fuzz/artifacts/
  # to add to the kept ones.
  require fuzz || return 0
  local secs=${FUZZ_SECONDS:-20} logs="$ROOT/target/fuzz-logs" spec target kept
  local fuzz=(cargo +nightly fuzz run --target-dir "$ROOT/target/fuzz")
  log "fuzz: build every target (cargo fuzz build, address sanitizer)"
  cargo +nightly fuzz build --target-dir "$ROOT/target/fuzz"
  rm -rf "$logs" && mkdir -p "$logs"
  local pids=() names=() failed=()
  while read -r spec; do
    IFS=: read -r target kept <<<"$spec"
    mkdir -p "fuzz/corpus/$target"
    log "fuzz: $target for ${secs}s (kept inputs: $kept)"
    "${fuzz[@]}" "$target" "fuzz/corpus/$target" "$kept" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$logs/$target.log" 2>&1 &
    pids+=($!) names+=("$target")
    if [ ${#pids[@]} -ge 2 ]; then
      wait "${pids[0]}" || failed+=("${names[0]}")
      pids=("${pids[@]:1}") names=("${names[@]:1}")
    fi
  done <<<"$FUZZ_TARGETS"
  local i
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
  for target in $(cut -d: -f1 <<<"$FUZZ_TARGETS"); do
    log "fuzz: $target: $(grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$logs/$target.log" | tr '\n' ' ')"
  done
  if [ ${#failed[@]} -gt 0 ]; then
    for target in "${failed[@]}"; do
      log "fuzz: $target FAILED; the end of its log ($logs/$target.log):"
      tail -n 60 "$logs/$target.log" >&2
    done
    return 1
  fi
}

mode_k8s() {
  # kubernetes-validate checks each manifest against the Kubernetes OpenAPI schemas it
  # ships (no cluster needed); --strict also rejects fields the schema does not know.
  require k8s || return 0
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
  require nix-rehearse || return 0
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
    fuzz) mode_fuzz ;;
    webui) mode_webui ;;
    all)
      # The fuzzers get 10 s a target here; alone they default to 20.
      export FUZZ_SECONDS=${FUZZ_SECONDS:-10}
      local m
      for m in $ALL_MODES; do timed "$m"; done
      ;;
    *)
      echo "ci-local.sh: unknown mode '$1' (see the header of $0 for the list)" >&2
      exit 2
      ;;
  esac
}

# timed MODE: runs it and records how long it took, for the table at the end.
TIMES=()
timed() {
  local t0=$SECONDS
  run_mode "$1"
  [ "$1" = all ] || TIMES+=("$(printf '%-24s %5ds' "$1" $((SECONDS - t0)))")
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) NO_INSTALL=1; shift ;;
    -h | --help) usage ;;
    -*) echo "ci-local.sh: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
preflight "$@"
for m in "$@"; do timed "$m"; done
log "time per mode:"
printf '    %s\n' "${TIMES[@]}" >&2
if [ ${#SKIPPED[@]} -gt 0 ]; then
  log "skipped (nothing was checked for these):"
  printf '    %s\n' "${SKIPPED[@]}" >&2
fi
log "ci-local.sh $*: all passed in ${SECONDS}s (${#SKIPPED[@]} skipped)"
