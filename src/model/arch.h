// Architectures as data: one row per architecture Volga loads, with the facts
// that differ between them (RoPE style, biases, q/k norms, router, latent
// attention), the hook that reads its own hyper-parameters, and the factory
// of the family that runs it. Code asks the row, never the name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/spec.h"

namespace volga {

class GgufFile;
class Model;
class ThreadPool;
struct StageRange;

struct ArchTraits {
  Arch arch;
  const char* name;             // general.architecture
  RopeStyle rope;               // adjacent pairs or split halves
  bool qkv_bias;                // attn_q/k/v.bias are required
  bool qk_norm;                 // per-head RMSNorm of q and k before RoPE
  bool moe;                     // routed experts (feed_forward_length only for dense layers)
  bool renorm_topk;             // the chosen experts' weights always sum to one
  bool mla;                     // multi-head latent attention (and DeepSeek's YaRN scaling)
  bool encoder;                 // bidirectional encoder without a language-model head (embeddings, rerank)
  // Reads the keys only this architecture has, after the common ones and
  // the experts' (null: none). Throws volga::Error naming a bad key.
  void (*read_hparams)(const GgufFile& file, const std::string& prefix, ModelSpec& spec);
  std::unique_ptr<Model> (*make)(const GgufFile& file, ThreadPool& pool);
  // A pipeline stage holding part of the model (null: cannot be split).
  std::unique_ptr<Model> (*make_stage)(const GgufFile& file, ThreadPool& pool, const StageRange& range);
};

// Every supported architecture, in the order `volga info` lists them.
const std::vector<ArchTraits>& architecture_table();
const ArchTraits& arch_traits(Arch arch);
// The row named `name` (general.architecture), or null.
const ArchTraits* find_architecture(const std::string& name);

}  // namespace volga
