// Internal to src/tokenizer: WordPiece and unigram vocabularies from a
// Hugging Face tokenizer.json, and their GGUF keys (as llama.cpp's converter
// writes BERT and XLM-RoBERTa vocabularies). Stateless functions: safe to
// call from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/vocab.h"

namespace volga {

// `tj` is the parsed tokenizer.json at `path` (named in errors). Throw
// volga::Error for a structure or normalizer these tokenizers cannot follow.
VocabData read_wordpiece_json(const nlohmann::json& tj, const std::string& path);
VocabData read_unigram_json(const nlohmann::json& tj, const std::string& path);

// tokenizer.ggml.* keys of a "bert" or "t5" vocabulary.
void write_wpm_ugm_gguf(GgufWriter& w, const VocabData& v);

// Decodes standard base64 (padding optional). Throws volga::Error on a bad character.
std::string base64_decode(const std::string& text);

}  // namespace volga
