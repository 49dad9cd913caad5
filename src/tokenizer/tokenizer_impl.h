// Internal: the tokenizer model implementations behind Tokenizer::from_gguf.
#pragma once

#include <memory>

#include "tokenizer/tokenizer.h"

namespace volga {

std::unique_ptr<Tokenizer> make_bpe_tokenizer();  // tokenizer.ggml.model = gpt2
std::unique_ptr<Tokenizer> make_spm_tokenizer();  // tokenizer.ggml.model = llama
std::unique_ptr<Tokenizer> make_wpm_tokenizer();  // tokenizer.ggml.model = bert
std::unique_ptr<Tokenizer> make_ugm_tokenizer();  // tokenizer.ggml.model = t5

// Bytes of a SentencePiece piece (BPE or unigram): a <0xXX> byte token is its
// byte, elsewhere U+2581 "▁" is a space.
std::string sentencepiece_piece_bytes(const std::string& piece, TokenType type);

}  // namespace volga
