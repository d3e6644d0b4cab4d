# scripts/lib/server.sh: start and stop a real bitnet-server for the scripts that drive it
# from outside (the openai client checks, the browser test). Source it; it defines:
#
#   server_bin          sets BIN: $BITNET_SERVER_BIN, else builds bitnet-server with the
#                       cargo profile CI_CARGO_PROFILE names (empty: dev; `release`; a name)
#                       and the features in BITNET_SERVER_FEATURES.
#   server_start LOG ARGS...
#                       starts "$BIN" ARGS... on 127.0.0.1 with a free port, its stderr in
#                       LOG, and waits for its "listening on" line; sets PID and URL. An exit
#                       trap kills it (and removes its scratch dir) if the script ends first.
#   server_wait_ready   waits (up to 60 s) until GET $URL/ready answers 200 (model loaded).
#   server_stop LOG     SIGTERM, then requires a graceful exit 0 (prints LOG's tail if not).
#   client_python MOD.. sets PY: `python3` when it imports every MOD (the Nix check's, from
#                       nixpkgs), else the venv target/openai-venv with the missing ones
#                       installed from PyPI (never machine-wide).
#
# The caller has `set -euo pipefail` and ROOT (the checkout) set.

server_bin() {
  if [ -n "${BITNET_SERVER_BIN:-}" ]; then
    BIN=$BITNET_SERVER_BIN
    return
  fi
  local dir profile_args
  case "${CI_CARGO_PROFILE:-}" in
    "" | dev) profile_args=() dir=debug ;;
    release) profile_args=(--release) dir=release ;;
    *) profile_args=(--profile "$CI_CARGO_PROFILE") dir=$CI_CARGO_PROFILE ;;
  esac
  cargo build -q "${profile_args[@]}" -p bitnet-server --locked \
    ${BITNET_SERVER_FEATURES:+--features "$BITNET_SERVER_FEATURES"}
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/bitnet-server"
}

server_start() {
  local log=$1
  shift
  SERVER_WORK=$(mktemp -d)
  "$BIN" --host 127.0.0.1 --port 0 "$@" >"$SERVER_WORK/stdout" 2>"$log" &
  PID=$!
  trap 'kill -9 "$PID" 2>/dev/null || true; rm -rf "$SERVER_WORK"' EXIT
  local _
  for _ in $(seq 1 200); do
    grep -qs '^bitnet-server listening on ' "$SERVER_WORK/stdout" && break
    kill -0 "$PID" 2>/dev/null || { cat "$log" >&2; echo "server exited early" >&2; exit 1; }
    sleep 0.1
  done
  URL=$(sed -n 's/^bitnet-server listening on //p' "$SERVER_WORK/stdout")
  [ -n "$URL" ] || { cat "$log" >&2; echo "server did not report its address" >&2; exit 1; }
}

server_wait_ready() {
  local _
  for _ in $(seq 1 600); do
    # curl where there is one; the Python of the checks otherwise (the Nix sandbox of the
    # receipts check has no curl).
    if command -v curl >/dev/null; then
      curl -sf "$URL/ready" >/dev/null 2>&1 && return 0
    else
      "${PY:-python3}" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/ready", timeout=2)' \
        "$URL" 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  echo "server at $URL was not ready after 60 s" >&2
  return 1
}

server_stop() {
  local log=$1 rc=0
  kill -TERM "$PID"
  wait "$PID" || rc=$?
  trap 'rm -rf "$SERVER_WORK"' EXIT
  if [ "$rc" -ne 0 ]; then
    echo "bitnet-server exited with $rc after SIGTERM (expected 0)" >&2
    tail -20 "$log" >&2
    return 1
  fi
}

client_python() {
  local imports
  imports=$(IFS=,; echo "$*")
  if python3 -c "import $imports" 2>/dev/null; then
    PY=python3
    return
  fi
  local venv="$ROOT/target/openai-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import $imports" 2>/dev/null || "$venv/bin/pip" install -q "$@"
  PY="$venv/bin/python"
}
