#!/bin/sh
# Perplexity of the demo model on the held-out split in every weight type,
# as a Markdown table for docs/QUALITY.md. Every type is quantized from the
# F32 export, except the committed Q8_0/F16 files which are measured as shipped.
#
#   tools/train_demo/quality.sh [WORK_DIR] [CTX]     (defaults /tmp/volga-demo, 512)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-/tmp/volga-demo}
CTX=${2:-512}
VOLGA="$ROOT/build/bin/volga"
TEXT="$WORK/data/heldout.txt"
[ -f "$TEXT" ] || /usr/bin/python3 "$ROOT/tools/train_demo/corpus.py" --out "$WORK/data" >/dev/null
echo "| type | file size | perplexity | ± | vs F32 |"
echo "|---|---|---|---|---|"
base=""
for t in f32 f16 q8_0 q6_k q5_k q4_k q4_0; do
  case $t in
    f32) f="$WORK/volga-demo-f32.gguf" ;;
    f16|q8_0) f="$ROOT/models/volga-demo-$t.gguf" ;;
    *) f="$WORK/volga-demo-$t.gguf"; "$VOLGA" quantize -q "$WORK/volga-demo-f32.gguf" "$f" --type "$t" ;;
  esac
  json=$("$VOLGA" perplexity "$f" "$TEXT" --ctx-size "$CTX" --json -q)
  [ -n "$base" ] || base=$json
  /usr/bin/python3 - "$t" "$f" "$json" "$base" <<'PY'
import json, os, sys
t, f, r, b = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print("| %s | %.2f MiB | %.3f | %.3f | %+.2f%% |" % (t.upper(), os.path.getsize(f) / 2**20, r["perplexity"],
      r["perplexity_error"], 100 * (r["perplexity"] / b["perplexity"] - 1)))
PY
done
