#!/usr/bin/env bash
# Side by side on one shared 2B4T-shaped file: bitnet.cpp (I2_S), ik_llama.cpp (IQ2_BN,
# repacked to IQ2_BN_R4 at load with -rtr 1) and BitNet-rs, engines in rotated order, two
# rounds, the C STREAM-style read (stream_read.c) before and after each round. Prints the
# engines' own tables; docs/performance.md ("side by side") gives a run and how the files
# and the external builds were made.
#
# A benchmark, not a test: run it on an idle machine. Environment (all required but RS):
#   BN    bitnet.cpp's build/bin (llama-bench)
#   IK    ik_llama.cpp's build/bin (llama-bench)
#   RS    bitnet-cli (default: target/release/bitnet-cli)
#   F     the I2_S file (bitnet-st2gguf --outtype i2_s), F16 head
#   FIK   F requantised by ik's llama-quantize to IQ2_BN, F16 head
#   FQ6   F with a Q6_K head (bitnet.cpp's llama-quantize ... I2_S)
#   FIKQ6 FIK with a Q6_K head (ik's llama-quantize ... IQ2_BN)
#   FQ4   F with a Q4_K head (bitnet.cpp's llama-quantize ... I2_S)
#   FIKQ4 FIK with a Q4_K head (ik's llama-quantize ... IQ2_BN)
set -euo pipefail

cd "$(dirname "$0")/../.."
: "${BN:?} ${IK:?} ${F:?} ${FIK:?} ${FQ6:?} ${FIKQ6:?} ${FQ4:?} ${FIKQ4:?}"
RS=${RS:-target/release/bitnet-cli}
out=target/membw
mkdir -p "$out"
gcc -O3 -march=native -fopenmp scripts/bench/stream_read.c -o "$out/stream_read"

stream() { for t in 1 2; do OMP_NUM_THREADS=$t OMP_PROC_BIND=close "$out/stream_read" 512 10; done; }
table() { grep -E '^\|' || true; }
bn() { echo "### bitnet.cpp F16 head"; "$BN/llama-bench" -m "$F" -p 128 -n 128 -t 1,2 -r 3 2>/dev/null | table; }
ik() { echo "### ik_llama.cpp F16 head"; "$IK/llama-bench" -m "$FIK" -p 128 -n 128 -t 1,2 -r 3 -rtr 1 2>/dev/null | table; }
rs() { echo "### BitNet-rs F16 head"; "$RS" bench -m "$F" -p 128 -n 128 -t 1,2 -r 3 --kv-type f16 --no-bandwidth 2>/dev/null | table; }
bnq() {
  echo "### bitnet.cpp Q6_K head"; "$BN/llama-bench" -m "$FQ6" -p 128 -n 128 -t 2 -r 3 2>/dev/null | table
  echo "### bitnet.cpp Q4_K head"; "$BN/llama-bench" -m "$FQ4" -p 128 -n 128 -t 2 -r 3 2>/dev/null | table
}
ikq() {
  echo "### ik_llama.cpp Q6_K head"; "$IK/llama-bench" -m "$FIKQ6" -p 128 -n 128 -t 2 -r 3 -rtr 1 2>/dev/null | table
  echo "### ik_llama.cpp Q4_K head"; "$IK/llama-bench" -m "$FIKQ4" -p 128 -n 128 -t 2 -r 3 -rtr 1 2>/dev/null | table
}
rsq() {
  echo "### BitNet-rs Q6_K-head file"
  "$RS" bench -m "$FQ6" -p 128 -n 128 -t 2 -r 3 --kv-type f16 --no-bandwidth 2>/dev/null | table
  echo "### BitNet-rs --head-type q8_0"
  "$RS" bench -m "$F" -p 128 -n 128 -t 2 -r 3 --kv-type f16 --head-type q8_0 --no-bandwidth 2>/dev/null | table
  echo "### BitNet-rs --head-type q6_k"
  "$RS" bench -m "$F" -p 128 -n 128 -t 2 -r 3 --kv-type f16 --head-type q6_k --no-bandwidth 2>/dev/null | table
  echo "### BitNet-rs Q4_K-head file"
  "$RS" bench -m "$FQ4" -p 128 -n 128 -t 2 -r 3 --kv-type f16 --no-bandwidth 2>/dev/null | table
  echo "### BitNet-rs --head-type q4_k_rescored"
  "$RS" bench -m "$F" -p 128 -n 128 -t 2 -r 3 --kv-type f16 --head-type q4_k_rescored --no-bandwidth 2>/dev/null | table
}

echo "machine: $(nproc) CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2; do
  echo "===== round $round $(date +%T)"
  stream
  if [[ $round == 1 ]]; then order="bn ik rs bnq ikq rsq"; else order="rs bn ik rsq bnq ikq"; fi
  for e in $order; do "$e"; done
  stream
done
