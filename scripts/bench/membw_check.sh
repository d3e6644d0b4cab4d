#!/usr/bin/env bash
# Checks `bitnet-cli bench`'s memory read-bandwidth probe against a C/OpenMP STREAM-style
# read (scripts/bench/stream_read.c): both run alternately, ROUNDS rounds, on 1 and 2 threads
# (THREADS), reading the same number of bytes (3 x MIB MiB); the best of each per thread count
# is compared, and the script exits 1 if the probe reads more than TOLERANCE_PCT (5 %) below
# the C read. A probe faster than the C read passes (and the ratio is printed): the roofline
# is then stricter than STREAM's, never more generous (on machine D the probe's two-stream
# 256-bit read gives 6-8 % more than the C read's three arrays).
#
# A benchmark, not a test: timings depend on the machine and its load, so it is not part of
# scripts/ci-local.sh. Run it on an idle machine.
#
# Needs gcc with OpenMP (Debian: gcc) and cargo. Environment:
#   ROUNDS (3), THREADS ("1 2"), MIB (512 per array), TOLERANCE_PCT (5),
#   BITNET_CLI (path to a built bitnet-cli; default: cargo build --release -p bitnet-cli)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-"1 2"}
MIB=${MIB:-512}
TOLERANCE_PCT=${TOLERANCE_PCT:-5}

out=target/membw
mkdir -p "$out"
gcc -O3 -march=native -fopenmp scripts/bench/stream_read.c -o "$out/stream_read"
if [[ -z ${BITNET_CLI:-} ]]; then
  CARGO_INCREMENTAL=0 cargo build --release --locked -q -p bitnet-cli
  BITNET_CLI=target/release/bitnet-cli
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "C: OMP_PROC_BIND=close $out/stream_read $MIB 10 (3 x $MIB MiB); probe: $BITNET_CLI bench --probe-only --probe-mib $((3 * MIB)) --probe-passes 10"

declare -A best_c best_p
for t in $THREADS; do
  best_c[$t]=0
  best_p[$t]=0
done
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }

for r in $(seq "$ROUNDS"); do
  for t in $THREADS; do
    # Alternate which one goes first, so neither always runs on a warmer or cooler machine.
    if ((r % 2)); then order="c probe"; else order="probe c"; fi
    for who in $order; do
      if [[ $who == c ]]; then
        line=$(OMP_NUM_THREADS=$t OMP_PROC_BIND=close "$out/stream_read" "$MIB" 10)
        gbs=$(awk '{ print $1 }' <<<"$line")
        best_c[$t]=$(max "${best_c[$t]}" "$gbs")
        echo "round $r threads $t C:     $line"
      else
        line=$("$BITNET_CLI" bench --probe-only -t "$t" --probe-mib $((3 * MIB)) --probe-passes 10)
        gbs=$(awk '{ print $4 }' <<<"$line")
        best_p[$t]=$(max "${best_p[$t]}" "$gbs")
        echo "round $r threads $t probe: $line"
      fi
    done
  done
done

status=0
for t in $THREADS; do
  awk -v t="$t" -v p="${best_p[$t]}" -v c="${best_c[$t]}" -v tol="$TOLERANCE_PCT" 'BEGIN {
    ratio = p / c; below = (1 - ratio) * 100
    printf "threads %s: probe %.2f GB/s, C %.2f GB/s, probe/C %.3f: %s\n", t, p, c, ratio,
      (below <= tol) ? "not more than " tol " % below" : "BELOW by more than " tol " %"
    exit (below <= tol) ? 0 : 1 }' || status=1
done
exit $status
