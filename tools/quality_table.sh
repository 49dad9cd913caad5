#!/bin/sh
# Perplexity and KL divergence against the F16 model for every weight type and
# named mix `volga quantize` writes, without and with an importance matrix,
# as a Markdown table for docs/QUALITY.md.
#
#   tools/quality_table.sh [WORK_DIR] [WINDOWS] [MODEL]
#       defaults: /tmp/volga-quality, 40 windows of 256 tokens, models/volga-demo-f16.gguf
#
# The importance matrix is collected by `volga imatrix` from the demo corpus's
# training split; perplexity and KL divergence are measured on its held-out
# split (tools/train_demo/corpus.py), so the matrix never sees the evaluation
# text. Each target is quantized from the F16 file. The 1-2-bit types without
# an importance matrix are made with --without-imatrix.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/volga-quality}
WINDOWS=${2:-40}
MODEL=${3:-$ROOT/models/volga-demo-f16.gguf}
VOLGA=${VOLGA_BIN:-$ROOT/build/bin/volga}
PY=/usr/bin/python3
mkdir -p "$WORK"
HELD="$WORK/data/heldout.txt"
TRAIN="$WORK/imatrix-train.txt"
[ -f "$HELD" ] || $PY "$ROOT/tools/train_demo/corpus.py" --out "$WORK/data" >/dev/null
[ -f "$TRAIN" ] || $PY - "$WORK/data/train.jsonl" "$TRAIN" <<'PY'
import json, sys
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
# Every 20th training document, up to 200 KB: all four languages.
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(texts[::20])[:200000])
PY
IMATRIX="$WORK/imatrix.gguf"
[ -f "$IMATRIX" ] || "$VOLGA" imatrix "$MODEL" "$TRAIN" -o "$IMATRIX" --chunk-size 256 --chunks 100 -q
PPL="--ctx-size 256 --max-windows $WINDOWS --json -q"
BASE="$WORK/base.kld"
# shellcheck disable=SC2086
"$VOLGA" perplexity "$MODEL" "$HELD" $PPL --kl-divergence-base "$BASE" >"$WORK/base.json"

# One target: quantize (with or without the imatrix), then measure against the base.
# A mix is named as it is; a type (lower case in TYPES) goes through --type,
# since volga quantize reads every name as a mix, as llama-quantize does.
measure() {  # target tag quantize-args...
  target=$1 tag=$2
  shift 2
  f="$WORK/demo-$target-$tag.gguf"
  case " $TYPES " in
    *" $target "*) "$VOLGA" quantize "$@" "$MODEL" "$f" --type "$target" 2>"$f.log" ;;
    *) "$VOLGA" quantize "$@" "$MODEL" "$f" "$target" 2>"$f.log" ;;
  esac
  # shellcheck disable=SC2086
  "$VOLGA" perplexity "$f" "$HELD" $PPL --kl-divergence-base "$BASE" --kl-divergence >"$f.json"
  rm -f "$f"
}

MIXES=$("$VOLGA" quantize --help | sed -n 's/^  \([A-Z0-9_]*\): .*/\1/p')
TYPES="q8_0 q6_k q5_k q5_1 q5_0 q4_k q4_1 q4_0 iq4_xs iq4_nl q3_k iq3_s iq3_xxs q2_k iq2_s iq2_xs iq2_xxs iq1_m iq1_s"
for t in $MIXES $TYPES; do
  measure "$t" plain --without-imatrix
  measure "$t" imatrix --imatrix "$IMATRIX"
done

$PY - "$WORK" "$MIXES" "$TYPES" <<'PY'
import json, os, re, sys
work, mixes, types = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
base = json.load(open(os.path.join(work, "base.json")))
print("Base: F16, perplexity %.3f over %d scored tokens (%d windows of %d)." % (
    base["perplexity"], base["scored_tokens"], base["windows"], base["ctx"]))
print()
print("| target | bits/weight | PPL | PPL vs F16 | mean KLD | same top | PPL, imatrix | vs F16 | mean KLD, imatrix | same top, imatrix |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in mixes + types:
    row = ["**%s**" % t if t in mixes else t]
    log = open(os.path.join(work, "demo-%s-plain.gguf.log" % t)).read()
    m = re.search(r"average ([0-9.]+) bits per weight", log)
    row.append(m.group(1) if m else "?")
    for tag in ("plain", "imatrix"):
        r = json.load(open(os.path.join(work, "demo-%s-%s.gguf.json" % (t, tag))))
        k = r["kl_divergence"]
        row += ["%.3f" % r["perplexity"], "%+.2f%%" % (100 * (k["perplexity_ratio"] - 1)),
                "%.5f" % k["mean"], "%.1f%%" % (100 * k["same_top"])]
    print("| " + " | ".join(row) + " |")
PY
