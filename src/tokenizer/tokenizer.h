// Tokenizer — text <-> token ids, built from GGUF tokenizer metadata.
// Models: "gpt2" (byte-level BPE with a per-family pre-tokenizer regex),
// "llama" (SentencePiece-style: scores, byte fallback, ▁ for spaces), "bert"
// (WordPiece: BERT normalizer, greedy longest match) and "t5" (SentencePiece
// unigram: precompiled normalization map, best-scoring segmentation).
// Thread-safety: immutable after construction; encode/decode are const and
// may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab.h"

namespace volga {

class GgufFile;

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Throws volga::Error when the metadata is missing or inconsistent.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  // A Hugging Face tokenizer.json (tokenizer_config.json beside it is read too).
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& path);
  static std::unique_ptr<Tokenizer> create(VocabData vocab);

  // add_special: add what the vocabulary asks for (BOS; BERT's [CLS] ... [SEP];
  // XLM-R's ... </s>).
  // parse_special: recognise control/user-defined token texts in `text`.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                                      bool parse_special = false) const = 0;

  // Raw bytes of one token (control tokens render their text only when asked).
  // Throws volga::Error for an id outside the vocabulary.
  std::string token_bytes(int32_t id, bool render_special = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& piece(int32_t id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenType type(int32_t id) const { return types_.at(static_cast<size_t>(id)); }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  bool add_bos() const { return add_bos_; }
  int32_t unk_id() const { return unk_; }
  int32_t sep_id() const { return sep_; }  // BERT's [SEP] (-1: none)
  int32_t pad_id() const { return pad_; }  // [PAD] / <pad> (-1: none)
  // A human-readable name of the algorithm ("byte-level BPE", "WordPiece"...).
  std::string kind() const { return kind_name(model_); }
  static std::string kind_name(const std::string& model);  // for a tokenizer.ggml.model value
  // End of generation: EOS, EOT, or any id the metadata lists as such.
  bool is_end_of_generation(int32_t id) const;
  const std::string& model_name() const { return model_; }
  const std::string& pre_name() const { return pre_; }
  // The chat template shipped with the vocabulary ("" when there is none).
  const std::string& chat_template() const { return chat_template_; }

 protected:
  Tokenizer() = default;
  // Model-specific set-up once the common fields are filled.
  virtual void init(const VocabData& vocab) = 0;
  // Bytes of a normal or byte token, in the model's own piece encoding.
  virtual std::string piece_bytes(const std::string& piece, TokenType type) const = 0;
  // Splits text into runs of plain text and special-token ids (longest match).
  struct Fragment {
    std::string_view text;
    int32_t id = -1;  // >= 0: a special token
  };
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
  std::optional<int32_t> lookup(std::string_view piece) const;

  std::string model_, pre_, chat_template_;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  struct StringHash {  // lets index_ be searched with string_view, without allocating
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
  std::vector<int32_t> specials_;  // control, unknown and user-defined ids, longest text first
  std::vector<int32_t> specials_by_byte_[256];  // specials_ split by first byte (same order)
  std::vector<int32_t> eog_;
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, sep_ = -1, pad_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_sep_ = false;
  bool normalize_nfc_ = false;
};

// Turns a stream of token ids into text without ever emitting a partial
// UTF-8 sequence: bytes of a character split across tokens are held back.
class StreamDecoder {
 public:
  // render_special: control tokens (other than the caller's stop tokens)
  // appear as their text, as chat markup parsers and grammars need.
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false) : tok_(tok), special_(render_special) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is pending (an incomplete sequence becomes U+FFFD)
  // Output is always valid UTF-8: bytes that cannot form a character become U+FFFD.

 private:
  const Tokenizer& tok_;
  bool special_ = false;
  std::string pending_;
};

}  // namespace volga
