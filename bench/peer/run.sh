#!/usr/bin/env bash
# Runs llama.cpp (prebuilt, from the node-llama-cpp npm package) and then
# `volga bench` on the same GGUF files, alternating, so that both engines
# see the same machine state. node-llama-cpp lives in build/peer
# (scripts/install-deps.sh installs it: npm registry, 85 MB, no compilation).
#
#   bench/peer/run.sh [-p 128] [-n 32] [-r 3] [-t 2] [-k ROUNDS] MODEL.gguf...
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
P=128 N=32 R=3 T=2 K=2
while getopts "p:n:r:t:k:" o; do
  case "$o" in p) P=$OPTARG ;; n) N=$OPTARG ;; r) R=$OPTARG ;; t) T=$OPTARG ;; k) K=$OPTARG ;;
    *) echo "usage: $0 [-p P] [-n N] [-r REPS] [-t THREADS] [-k ROUNDS] MODEL.gguf..." >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-p P] [-n N] [-r REPS] [-t THREADS] [-k ROUNDS] MODEL.gguf..." >&2; exit 2; }
peer="$root/build/peer"
[ -d "$peer/node_modules/node-llama-cpp" ] || "$root/scripts/install-deps.sh" >&2
cp "$root/bench/peer/llamacpp_bench.mjs" "$peer/"
for ((k = 1; k <= K; k++)); do
  for m in "$@"; do
    node "$peer/llamacpp_bench.mjs" "$m" "$P" "$N" "$R" "$T"
    "$root/build/bin/volga" bench "$m" -p "$P" -n "$N" -r "$R" -t "$T" --json
  done
done
