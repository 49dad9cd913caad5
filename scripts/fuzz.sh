#!/usr/bin/env bash
# Builds the GGUF, Jinja, safetensors, grammar, JSON Schema, tool-call output, charsmap, imatrix, document-index and pipeline-message libFuzzer targets with clang (AddressSanitizer + UBSan) and
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
cmake --build build-fuzz --target gguf_fuzz jinja_fuzz safetensors_fuzz grammar_fuzz schema_fuzz tool_output_fuzz charsmap_fuzz imatrix_fuzz index_fuzz \
  pipeline_message_fuzz make_corpus volga-synth
mkdir -p build-fuzz/corpus build-fuzz/seeds
build-fuzz/bin/make_corpus build-fuzz/seeds
build-fuzz/bin/volga-synth -q -o build-fuzz/seeds/tiny_model.gguf --n-embd 32 --n-ff 64 --head-dim 8 \
  --n-layer 1 --vocab-size 300
# Vocabulary-only seeds for the WordPiece and unigram readers (the unigram one with a one-rule charsmap).
mkdir -p build-fuzz/seeds-json/wp build-fuzz/seeds-json/ugm
cat > build-fuzz/seeds-json/wp/tokenizer.json <<'JSON'
{"added_tokens":[{"id":0,"content":"[UNK]","special":true},{"id":1,"content":"[CLS]","special":true},{"id":2,"content":"[SEP]","special":true}],
 "normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},
 "post_processor":{"type":"BertProcessing","cls":["[CLS]",1],"sep":["[SEP]",2]},
 "model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"hello":3,"##lo":4,",":5,"мир":6}}}
JSON
cat > build-fuzz/seeds-json/ugm/tokenizer.json <<'JSON'
{"added_tokens":[{"id":0,"content":"<s>","special":true},{"id":1,"content":"</s>","special":true},{"id":2,"content":"<unk>","special":true}],
 "normalizer":{"type":"Sequence","normalizers":[{"type":"Precompiled","precompiled_charsmap":"DAAAAAAAAQBBDQAAAAAAgGEA"},
   {"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}]},
 "pre_tokenizer":{"type":"Metaspace","replacement":"\u2581","prepend_scheme":"always"},
 "model":{"type":"Unigram","unk_id":2,"vocab":[["<s>",0],["</s>",0],["<unk>",0],["\u2581",-2],["\u2581a",-1],["a",-3],["b",-3]]}}
JSON
build-fuzz/bin/volga-synth -q --vocab-only --tokenizer-json build-fuzz/seeds-json/wp/tokenizer.json -o build-fuzz/seeds/vocab_wordpiece.gguf
build-fuzz/bin/volga-synth -q --vocab-only --tokenizer-json build-fuzz/seeds-json/ugm/tokenizer.json -o build-fuzz/seeds/vocab_unigram.gguf
cd build-fuzz
# run_fuzzer WHAT TARGET SECONDS MAX_LEN CORPUS SEEDS...
run_fuzzer() {
  local what=$1 target=$2 secs=$3 max_len=$4
  shift 4
  echo "fuzzing $what for ${secs}s"
  mkdir -p "$1"
  ASAN_OPTIONS=detect_leaks=1 "bin/$target" -max_total_time="$secs" -rss_limit_mb=4096 -max_len="$max_len" \
    -timeout=20 -print_final_stats=1 "$@" 2>&1 | tail -n 25
}
mkdir -p seeds-pipeline seeds-safetensors seeds-grammar seeds-schema seeds-tools seeds-charsmap seeds-imatrix
printf '\x55\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}    \x00\x3c\x00\xc0\x00\x00\xff\x7b' \
  > seeds-safetensors/small.safetensors
printf 'root ::= "{" ws item ("," ws item)* "}"\nitem ::= [a-z]+ | "\\u0416" .\nws ::= [ \\t\\n]*\n' > seeds-grammar/json.gbnf
printf '{"type":"object","properties":{"a":{"type":"integer","minimum":-5,"maximum":300},"b":{"type":"string","pattern":"^[a-z]{2,4}$"},"c":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/d"}]}},"required":["a"],"$defs":{"d":{"type":"array","items":{"enum":["x",1,null]},"maxItems":3}}}' \
  > seeds-schema/schema.json
printf '\x00\x03<think>x</think>text <tool_call>\n{"name": "f", "arguments": {"a": [1, "\xd0\x96"]}}\n</tool_call>' > seeds-tools/hermes.txt
printf '\x01\x02<tool_call>\n<function=f>\n<parameter=a>\nv\n</parameter>\n</function>\n</tool_call>' > seeds-tools/coder.txt
# Charsmap: a hand-built one-rule map ("A" -> "a") and, with python3-sentencepiece, SentencePiece's own nmt_nfkc map.
printf '\x03xAy\x0c\x00\x00\x00\x00\x00\x01\x00\x41\x0d\x00\x00\x00\x00\x00\x80a\x00' > seeds-charsmap/one_rule.bin
/usr/bin/python3 -c "import sentencepiece" 2>/dev/null && /usr/bin/python3 ../tests/fuzz/charsmap_seed.py seeds-charsmap/nmt_nfkc.bin

# Importance matrices: a legacy .dat with one entry; the GGUF seeds exercise the GGUF branch.
printf '\x01\x00\x00\x00\x05\x00\x00\x00a.wts\x02\x00\x00\x00\x02\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x01\x00\x00\x00\x01\x00\x00\x00d' \
  > seeds-imatrix/one.dat

run_fuzzer "the GGUF reader" gguf_fuzz "$seconds" 262144 corpus seeds
run_fuzzer "the Jinja chat-template interpreter" jinja_fuzz "$((seconds / 2))" 65536 corpus-jinja ../../shared/testdata/templates
run_fuzzer "the safetensors reader" safetensors_fuzz "$((seconds / 3))" 65536 corpus-safetensors seeds-safetensors
run_fuzzer "the GBNF grammar parser and matcher" grammar_fuzz "$((seconds / 3))" 8192 corpus-grammar seeds-grammar
run_fuzzer "the JSON Schema converter" schema_fuzz "$((seconds / 3))" 8192 corpus-schema seeds-schema
run_fuzzer "the tool-call and reasoning output parser" tool_output_fuzz "$((seconds / 3))" 8192 corpus-tools seeds-tools
run_fuzzer "the SentencePiece charsmap and unigram normalizer" charsmap_fuzz "$((seconds / 3))" 262144 corpus-charsmap seeds-charsmap
# Document index: an index's database and vectors file, as written by volga (index_fuzz writes them).
bin/index_fuzz -write_seeds=seeds-index >/dev/null
run_fuzzer "the importance-matrix reader" imatrix_fuzz "$((seconds / 3))" 262144 corpus-imatrix seeds-imatrix seeds
run_fuzzer "the document index (SQLite database and hnswlib vectors)" index_fuzz "$((seconds / 3))" 65536 corpus-index seeds-index
run_fuzzer "the MPI pipeline-stage messages" pipeline_message_fuzz "$((seconds / 3))" 65536 corpus-pipeline seeds-pipeline
