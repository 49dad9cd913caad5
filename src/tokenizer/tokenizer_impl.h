// Internal: the tokenizer model implementations behind Tokenizer::from_gguf.
#pragma once

#include <memory>

#include "tokenizer/tokenizer.h"

namespace volga {

std::unique_ptr<Tokenizer> make_bpe_tokenizer();  // tokenizer.ggml.model = gpt2
std::unique_ptr<Tokenizer> make_spm_tokenizer();  // tokenizer.ggml.model = llama

}  // namespace volga
