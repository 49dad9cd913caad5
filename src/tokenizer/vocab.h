// VocabData — everything a tokenizer is built from, read either from GGUF
// metadata (tokenizer.ggml.*) or from a Hugging Face tokenizer.json (with the
// tokenizer_config.json beside it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace volga {

class GgufFile;
class GgufWriter;
enum class TokenType : int32_t;

struct VocabData {
  // "gpt2" (byte-level BPE), "llama" (SentencePiece BPE), "bert" (WordPiece)
  // or "t5" (SentencePiece unigram), as GGUF's tokenizer.ggml.model names them.
  std::string model;
  std::string pre;    // pre-tokenizer name (informational for tokenizer.json)
  std::vector<std::string> pre_regexes;  // applied in order; each splits the pieces of the previous
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::string> merges;  // "left right", by rank
  std::vector<float> scores;        // SentencePiece piece scores
  int32_t bos = -1, eos = -1;
  int32_t unk = -1, sep = -1, pad = -1, mask = -1;  // -1: none
  std::vector<int32_t> eog;  // end-of-generation ids (EOS, EOT, EOM...)
  bool add_bos = false;
  bool add_eos = false;  // unigram (XLM-R): ... </s>
  bool add_sep = false;  // WordPiece (BERT): [CLS] ... [SEP]
  bool add_space_prefix = true;  // SentencePiece: prepend ▁
  bool ignore_merges = false;    // BPE: a whole word in the vocabulary wins (Llama 3)
  bool normalize_nfc = false;    // tokenizer.json NFC normalizer (Qwen); GGUF files carry none
  // WordPiece (BERT normalizer): lower-case; strip accents (NFD, drop
  // non-spacing marks). strip_accents defaults to lowercase, as in BERT.
  bool lowercase = false;
  bool strip_accents = false;
  // Unigram: SentencePiece's precompiled normalization map (raw bytes), runs
  // of spaces collapsed and leading/trailing ones dropped, and the Hugging
  // Face Metaspace pre-tokenizer (XLM-R's tokenizer.json: words split at each ▁, a ▁
  // prepended only when the text does not start with a space, one trailing ▁ kept).
  std::string precompiled_charsmap;
  bool remove_extra_whitespaces = false;
  bool hf_metaspace = false;
  std::string chat_template;
};

// Throws volga::Error naming the file and key when metadata is missing or inconsistent.
VocabData read_vocab_gguf(const GgufFile& file);
VocabData read_vocab_tokenizer_json(const std::string& path);

// The split regexes llama.cpp uses for a GGUF tokenizer.ggml.pre value.
// Throws volga::Error for an unknown name.
std::vector<std::string> pre_tokenizer_regexes(const std::string& pre);

// The GGUF tokenizer.ggml.pre name whose regexes are v.pre_regexes (qwen2,
// llama-bpe, deepseek-v3). Throws volga::Error for any other pre-tokenizer.
std::string gguf_pre_name(const VocabData& v);

// Writes the tokenizer.ggml.* keys (and the chat template) of a byte-level
// BPE, WordPiece or unigram vocabulary, as llama.cpp's converter does.
void write_vocab_gguf(GgufWriter& w, const VocabData& v);

}  // namespace volga
