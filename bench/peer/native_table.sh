#!/usr/bin/env bash
# The side-by-side table of issue 19: Volga (`volga bench`), llama.cpp's and
# ik_llama.cpp's own `llama-bench` (native builds from their sources, not the
# npm package) on the same GGUF files, at pp/tg and at depths, with each
# process's peak resident memory (GNU time's maximum resident set size).
# Engines alternate per model, so all three see the same machine state.
#
#   bench/peer/native_table.sh [-l LLAMA_BENCH] [-i IK_LLAMA_BENCH] [-v VOLGA]
#       [-p 128] [-n 32] [-d "0 2048 8192"] [-r 3] [-t 2] MODEL.gguf...
#
# ik_llama.cpp's llama-bench has no -d: its decode at depth D is its
# -gp D,N test (N tokens generated after a D-token prompt), and its prefill
# at depth is left empty. Volga runs once per depth (its -d takes one value), llama-bench once per
# model with all depths. -l / -i may be left out (that engine's columns stay empty). llama.cpp runs
# with flash attention on (-fa on); ik_llama.cpp with -fa 1 and run-time
# repacking (-rtr 1). Prints one markdown table, rows per model and depth,
# and the raw outputs under $OUT_DIR (default: a new temporary folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
LLAMA="" IK="" VOLGA="$root/build/bin/volga" P=128 N=32 DEPTHS="0 2048 8192" R=3 T=2
usage() { echo "usage: $0 [-l LLAMA_BENCH] [-i IK_LLAMA_BENCH] [-v VOLGA] [-p P] [-n N] [-d \"D1 D2\"] [-r REPS] [-t THREADS] MODEL.gguf..." >&2; exit 2; }
while getopts "l:i:v:p:n:d:r:t:" o; do
  case "$o" in l) LLAMA=$OPTARG ;; i) IK=$OPTARG ;; v) VOLGA=$OPTARG ;; p) P=$OPTARG ;; n) N=$OPTARG ;;
    d) DEPTHS=$OPTARG ;; r) R=$OPTARG ;; t) T=$OPTARG ;; *) usage ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || usage
[ -x /usr/bin/time ] || { echo "$0: needs GNU time (/usr/bin/time; Debian package 'time')" >&2; exit 1; }
out="${OUT_DIR:-$(mktemp -d /tmp/native_table.XXXXXX)}"
mkdir -p "$out"

# Runs a command with GNU time; its output in $out/$1.txt, peak RSS (KiB) in $out/$1.rss.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%M" -o "$out/$name.rss" "$@" > "$out/$name.txt" 2> "$out/$name.err" || {
    echo "$0: $name failed (see $out/$name.err)" >&2; echo "failed" > "$out/$name.txt"; }
}
# tok/s of llama-bench's markdown row for test $2 (pp128, tg32, "pp128 @ d2048").
llama_ts() { awk -F'|' -v t="$2" 'NF >= 4 { n=$(NF-2); gsub(/^ +| +$/, "", n) } n == t { split($(NF-1), a, "±"); gsub(/ /, "", a[1]); print a[1]; exit }' "$1"; }
# tok/s (median) of volga bench's row for test $2.
volga_ts() { awk -F'|' -v t="$2" '{ n=$2; gsub(/^ +| +$/, "", n) } n == t { v=$3; gsub(/ /, "", v); print v; exit }' "$1"; }
# The largest peak resident set (KiB) among the files given, in MiB.
mib() { cat "$@" 2>/dev/null | awk '$1 + 0 > m { m = $1 + 0 } END { if (m) printf "%.0f", m / 1024; else print "-" }'; }

depth_list=$(echo "$DEPTHS" | tr ' ' ',')
echo "| model | test | Volga | llama.cpp | ik_llama.cpp |"
echo "|---|---|---|---|---|"
for m in "$@"; do
  b=$(basename "$m" .gguf)
  for d in $DEPTHS; do timed "$b.volga.d$d" "$VOLGA" bench "$m" -p "$P" -n "$N" -r "$R" -t "$T" -d "$d"; done
  [ -n "$LLAMA" ] && timed "$b.llama" "$LLAMA" -m "$m" -p "$P" -n "$N" -r "$R" -t "$T" -d "$depth_list" -fa on -o md
  if [ -n "$IK" ]; then
    gp=()
    for d in $DEPTHS; do [ "$d" != 0 ] && gp+=(-gp "$d,$N"); done
    timed "$b.ik" "$IK" -m "$m" -p "$P" -n "$N" "${gp[@]}" -r "$R" -t "$T" -fa 1 -rtr 1 -o md
  fi
  for d in $DEPTHS; do
    for test in "pp$P" "tg$N"; do
      name=$test
      [ "$d" != 0 ] && name="$test @ d$d"
      v=$(volga_ts "$out/$b.volga.d$d.txt" "$name")
      l=$([ -n "$LLAMA" ] && llama_ts "$out/$b.llama.txt" "$name" || true)
      ik_name=$name  # ik's llama-bench has no -d: decode at depth is its -gp test, prefill at depth is not measured
      [ "$d" != 0 ] && ik_name=$([ "$test" = "tg$N" ] && echo "tg$N@pp$d" || echo "none")
      k=$([ -n "$IK" ] && llama_ts "$out/$b.ik.txt" "$ik_name" || true)
      echo "| $b | $name | ${v:--} | ${l:--} | ${k:--} |"
    done
  done
  echo "| $b | peak resident MiB (file $(( $(stat -c %s "$m") / 1048576 )) MiB) | $(mib "$out/$b".volga.d*.rss) | $(mib "$out/$b.llama.rss") | $(mib "$out/$b.ik.rss") |"
done
echo "raw outputs: $out" >&2
