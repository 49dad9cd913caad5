#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to Volga generating text:
# installs dependencies, builds build/bin/volga, and runs the demo model that
# ships in models/ (a small Llama trained in this repository, tools/train_demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
model=models/volga-demo-q8_0.gguf
build/bin/volga info "$model" | sed -n "1,16p"
echo
# No model argument: run, chat and serve use the demo model in models/.
echo "\$ build/bin/volga run -p \"The old man said\" -n 48 --seed 1"
build/bin/volga run -p "The old man said" -n 48 --seed 1
echo
echo "\$ build/bin/volga run -p \"Однажды утром\" -n 48 --seed 1"
build/bin/volga run -p "Однажды утром" -n 48 --seed 1
echo
