// The architecture table and the loader that picks a row from
// general.architecture. Adding an architecture: its row here, its family's
// factory (and hyper-parameter hook) in its own file, its tests.
#include "format/gguf.h"
#include "model/arch.h"
#include "model/architectures.h"
#include "model/model.h"
#include "util/error.h"

namespace volga {

const std::vector<ArchTraits>& architecture_table() {
  //                       arch             name         rope                bias   qk_norm moe    renorm mla    encoder
  static const std::vector<ArchTraits> table = {
      {Arch::Llama, "llama", RopeStyle::Normal, false, false, false, false, false, false, nullptr, make_dense_decoder, make_dense_stage},
      {Arch::Qwen2, "qwen2", RopeStyle::Neox, true, false, false, false, false, false, nullptr, make_dense_decoder, make_dense_stage},
      {Arch::Qwen3, "qwen3", RopeStyle::Neox, false, true, false, false, false, false, nullptr, make_dense_decoder, make_dense_stage},
      {Arch::Qwen3Moe, "qwen3moe", RopeStyle::Neox, false, true, true, true, false, false, nullptr,
       make_dense_decoder, make_dense_stage},
      {Arch::Deepseek2, "deepseek2", RopeStyle::Normal, false, false, true, false, true, false,
       read_deepseek2_hparams, make_mla_decoder, make_mla_stage},
      {Arch::Bert, "bert", RopeStyle::Normal, true, false, false, false, false, true, read_bert_hparams,
       make_bert_encoder, nullptr},
      {Arch::Qwen35, "qwen35", RopeStyle::Neox, false, true, false, false, false, false, read_qwen35_hparams,
       make_qwen35, nullptr},
      {Arch::Qwen35Moe, "qwen35moe", RopeStyle::Neox, false, true, true, true, false, false, read_qwen35_hparams,
       make_qwen35, nullptr},
  };
  return table;
}

const ArchTraits& arch_traits(Arch arch) {
  for (const ArchTraits& t : architecture_table())
    if (t.arch == arch) return t;
  throw Error("internal: architecture without a table row");
}

const ArchTraits* find_architecture(const std::string& name) {
  for (const ArchTraits& t : architecture_table())
    if (name == t.name) return &t;
  return nullptr;
}

const ArchTraits& ModelSpec::traits() const { return arch_traits(arch); }
const char* ModelSpec::arch_name() const { return traits().name; }

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ArchTraits& t : architecture_table()) v.push_back(t.name);
    return v;
  }();
  return names;
}

std::vector<float> Model::token_states(const Batch&) {
  throw Error(std::string("'") + spec().arch_name() + "' models cannot compute embeddings yet");
}

std::vector<float> Model::classify(const float*, int64_t) {
  throw Error("this model has no classification head (it is not a reranker)");
}

void Model::submit(const Batch& batch, KvCache& cache) { submitted_.push_back(forward(batch, cache)); }

Logits Model::collect() {
  if (submitted_.empty()) throw Error("internal: collect() without a submitted forward pass");
  Logits l = std::move(submitted_.front());
  submitted_.pop_front();
  return l;
}

namespace {
[[noreturn]] void cannot_split(const ModelSpec& s) {
  throw Error(std::string("'") + s.arch_name() + "' models cannot be split into pipeline stages (MPI) yet");
}
}  // namespace

void Model::embed(const Batch&, std::vector<float>&) { cannot_split(spec()); }
void Model::run_layers(const Batch&, KvCache&, float*) { cannot_split(spec()); }
Logits Model::output(const Batch&, const float*) { cannot_split(spec()); }

bool architecture_splits(const ModelSpec& spec) { return spec.traits().make_stage != nullptr; }

std::unique_ptr<Model> load_model_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range) {
  const ModelSpec spec = read_model_spec(file);
  if (!architecture_splits(spec)) cannot_split(spec);
  const int64_t end = range.end < 0 ? spec.n_layer : range.end;
  if (range.first < 0 || range.first > end || end > spec.n_layer)
    throw Error("layers [" + std::to_string(range.first) + ", " + std::to_string(end) + ") are outside the " +
                std::to_string(spec.n_layer) + " layers of the model");
  return spec.traits().make_stage(file, pool, StageRange{range.first, end, range.head});
}

std::unique_ptr<Model> load_model(const GgufFile& file, ThreadPool& pool) {
  // The factory reads the spec again (read_model_spec) and binds the tensors.
  return read_model_spec(file).traits().make(file, pool);
}

}  // namespace volga
