#!/bin/sh
# Builds the demo model from scratch: corpus from Debian packages, tokenizer,
# training (PyTorch, CPU), GGUF export with Volga's own converter, and the
# PyTorch reference logits the tests compare against. Never run by CI.
#
#   tools/train_demo/build_demo.sh [WORK_DIR]      (default /tmp/volga-demo)
#
# Needs: apt-get install python3-torch python3-regex libopenblas0-pthread \
#        fortunes fortunes-ru fortunes-zh manpages-fr
# (without OpenBLAS, Debian's torch falls back to the reference BLAS and is ~50x slower).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-/tmp/volga-demo}
PY=/usr/bin/python3
VOLGA="$ROOT/build/bin/volga"
[ -x "$VOLGA" ] || { echo "build Volga first (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$WORK"
$PY "$ROOT/tools/train_demo/corpus.py" --out "$WORK/data"
time $PY "$ROOT/tools/train_demo/train.py" --data "$WORK/data" --out "$WORK/hf"
"$VOLGA" convert "$WORK/hf" -o "$WORK/volga-demo-f32.gguf" --type f32 --name volga-demo
"$VOLGA" convert "$WORK/hf" -o "$ROOT/models/volga-demo-f16.gguf" --type f16 --name volga-demo
"$VOLGA" quantize "$WORK/volga-demo-f32.gguf" "$ROOT/models/volga-demo-q8_0.gguf" q8_0
$PY "$ROOT/tools/train_demo/reference_logits.py" "$WORK/hf" --round f16 \
  --out "$ROOT/models/volga-demo-f16.reference.npz" \
  --text "Once upon a time, the old man said: «Москва — столица России». 今天天气很好。 C'est la vie !"
cp "$WORK/hf/train_log.csv" "$ROOT/docs/demo_train_log.csv"
echo "demo model written to $ROOT/models"
