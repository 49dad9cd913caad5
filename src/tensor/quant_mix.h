// Quantization mixes: which type each tensor of a model gets when a file is
// quantized to a named mix (Q4_K_M, Q3_K_S, IQ2_XXS, ...). The rules are
// llama.cpp's per-tensor rules, so that a file made by `volga quantize` has
// the same type for every tensor as one made by llama-quantize: more bits for
// the value projections, for some feed-forward down projections and for the
// output head; a fallback type where a row is not a whole number of blocks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/dtype.h"

namespace volga {

struct QuantMix {
  const char* name;         // as users write it: "Q4_K_M"
  uint32_t file_type;       // general.file_type (llama.cpp's llama_ftype)
  const char* base_type;    // the type most matrices get: "q4_k"
  const char* description;  // one line for --help
};

// Every named mix, in the order --help lists them.
const std::vector<QuantMix>& quant_mixes();
// The mix called `name`, or null. As llama-quantize reads its type argument:
// any case ("q2_k" is the mix Q2_K, not the type q2_k everywhere), and Q3_K,
// Q4_K, Q5_K are aliases of the _M mixes. One type everywhere is asked for
// separately (volga quantize --type).
const QuantMix* find_quant_mix(const std::string& name);
// The aliases find_quant_mix accepts: (alias, mix name).
const std::vector<std::pair<const char*, const char*>>& quant_mix_aliases();

// What the rules need to know about the model (from its GGUF metadata).
struct MixModel {
  int64_t n_layer = 0;
  int64_t n_head = 0, n_head_kv = 0;
  int64_t n_expert = 0;
};

// One tensor of the input file, in file order.
struct MixTensor {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] = columns (elements per row)
  DType type = DType::F32;
};

struct MixOptions {
  std::optional<DType> output_type;      // --output-tensor-type
  std::optional<DType> token_embd_type;  // --token-embedding-type
  bool pure = false;                     // every matrix the base type (no per-tensor rules)
  bool has_imatrix = false;
};

struct MixChoice {
  bool quantize = false;        // false: the tensor is copied as it is
  DType type = DType::F32;      // the type written
  bool needs_imatrix = false;   // this type is unusable without an importance matrix here
  std::string fallback;         // why the rule's type could not be used, or empty
};

// The type of every tensor (same order as `tensors`). Throws volga::Error
// when the mix needs a type this build cannot write.
std::vector<MixChoice> plan_quant_mix(const QuantMix& mix, const std::vector<MixTensor>& tensors,
                                      const MixModel& model, const MixOptions& options);

// A mix made of one type: the file type llama.cpp records for it, if any.
std::optional<uint32_t> pure_file_type(DType type);

}  // namespace volga
