#!/usr/bin/env bash
# Builds the GGUF, Jinja, safetensors, grammar, JSON Schema and tool-call output libFuzzer targets with clang (AddressSanitizer + UBSan) and
# runs it for a bounded time on the malformed-file seed corpus.
#   scripts/fuzz.sh [SECONDS]      default 60; CI uses the default
# To fuzz longer, keep the corpus between runs:
#   scripts/fuzz.sh 3600           (corpus grows in build-fuzz/corpus)
# A crash leaves crash-* files in build-fuzz/; reproduce with
#   build-fuzz/bin/gguf_fuzz build-fuzz/crash-<hash>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVOLGA_FUZZ=ON -DVOLGA_TESTS=OFF >/dev/null
cmake --build build-fuzz --target gguf_fuzz jinja_fuzz safetensors_fuzz grammar_fuzz schema_fuzz tool_output_fuzz \
  make_corpus volga-synth
mkdir -p build-fuzz/corpus build-fuzz/seeds
build-fuzz/bin/make_corpus build-fuzz/seeds
build-fuzz/bin/volga-synth -q -o build-fuzz/seeds/tiny_model.gguf --n-embd 32 --n-ff 64 --head-dim 8 \
  --n-layer 1 --vocab-size 300
cd build-fuzz
echo "fuzzing the GGUF reader for ${seconds}s"
ASAN_OPTIONS=detect_leaks=1 bin/gguf_fuzz -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=262144 \
  -timeout=20 -print_final_stats=1 corpus seeds 2>&1 | tail -n 25
echo "fuzzing the Jinja chat-template interpreter for $((seconds / 2))s"
mkdir -p corpus-jinja
ASAN_OPTIONS=detect_leaks=1 bin/jinja_fuzz -max_total_time="$((seconds / 2))" -rss_limit_mb=4096 -max_len=65536 \
  -timeout=20 -print_final_stats=1 corpus-jinja ../../shared/testdata/templates 2>&1 | tail -n 25
echo "fuzzing the safetensors reader for $((seconds / 3))s"
mkdir -p corpus-safetensors seeds-safetensors
printf '\x55\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}    \x00\x3c\x00\xc0\x00\x00\xff\x7b' \
  > seeds-safetensors/small.safetensors
ASAN_OPTIONS=detect_leaks=1 bin/safetensors_fuzz -max_total_time="$((seconds / 3))" -rss_limit_mb=4096 -max_len=65536 \
  -timeout=20 -print_final_stats=1 corpus-safetensors seeds-safetensors 2>&1 | tail -n 25
echo "fuzzing the GBNF grammar parser and matcher for $((seconds / 3))s"
mkdir -p corpus-grammar seeds-grammar
printf 'root ::= "{" ws item ("," ws item)* "}"\nitem ::= [a-z]+ | "\\u0416" .\nws ::= [ \\t\\n]*\n' > seeds-grammar/json.gbnf
ASAN_OPTIONS=detect_leaks=1 bin/grammar_fuzz -max_total_time="$((seconds / 3))" -rss_limit_mb=4096 -max_len=8192 \
  -timeout=20 -print_final_stats=1 corpus-grammar seeds-grammar 2>&1 | tail -n 25
echo "fuzzing the JSON Schema converter for $((seconds / 3))s"
mkdir -p corpus-schema seeds-schema
printf '{"type":"object","properties":{"a":{"type":"integer","minimum":-5,"maximum":300},"b":{"type":"string","pattern":"^[a-z]{2,4}$"},"c":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/d"}]}},"required":["a"],"$defs":{"d":{"type":"array","items":{"enum":["x",1,null]},"maxItems":3}}}' \
  > seeds-schema/schema.json
ASAN_OPTIONS=detect_leaks=1 bin/schema_fuzz -max_total_time="$((seconds / 3))" -rss_limit_mb=4096 -max_len=8192 \
  -timeout=20 -print_final_stats=1 corpus-schema seeds-schema 2>&1 | tail -n 25
echo "fuzzing the tool-call and reasoning output parser for $((seconds / 3))s"
mkdir -p corpus-tools seeds-tools
printf '\x00\x03<think>x</think>text <tool_call>\n{"name": "f", "arguments": {"a": [1, "\xd0\x96"]}}\n</tool_call>' > seeds-tools/hermes.txt
printf '\x01\x02<tool_call>\n<function=f>\n<parameter=a>\nv\n</parameter>\n</function>\n</tool_call>' > seeds-tools/coder.txt
ASAN_OPTIONS=detect_leaks=1 bin/tool_output_fuzz -max_total_time="$((seconds / 3))" -rss_limit_mb=4096 -max_len=8192 \
  -timeout=20 -print_final_stats=1 corpus-tools seeds-tools 2>&1 | tail -n 25
