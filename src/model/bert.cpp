// The bert architecture as llama.cpp's converter writes BERT-family encoders
// (BGE, E5, MiniLM; XLM-RoBERTa models such as bge-m3 and the bge-reranker
// cross-encoders, whose position table the converter already shifts to start
// at 0). Post-norm encoder: the input is the token embedding plus token type
// 0 plus the learned position embedding, LayerNorm'd; each layer is
// bidirectional multi-head attention (q/k/v/output with biases) added to its
// input and LayerNorm'd, then an up/GELU/down feed-forward (with biases)
// added to that and LayerNorm'd again. There is no language-model head: the
// last layer's states are pooled into embeddings (runtime/embed.h), and rank
// models add a classification head (cls: dense + tanh, cls.output: scores).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/architectures.h"
#include "model/blocks.h"
#include "model/model.h"
#include "util/error.h"

namespace volga {

void read_bert_hparams(const GgufFile& f, const std::string& p, ModelSpec& s) {
  const auto eps = f.get_float_opt(p + "attention.layer_norm_epsilon");
  if (!eps || !(*eps > 0) || *eps > 1) spec_error(f, "bert needs a positive attention.layer_norm_epsilon");
  s.norm_eps = static_cast<float>(*eps);
  s.causal = f.get_bool_opt(p + "attention.causal").value_or(false);
  if (s.causal) spec_error(f, "bert with causal attention is not supported");
  if (s.n_head_kv != s.n_head) spec_error(f, "bert needs as many key/value heads as query heads");
  // The classification head's outputs come from its tensor (checked by the binder).
  if (const TensorInfo* out = f.find_tensor("cls.output.weight")) s.n_cls_out = out->ne[1];
  else if (f.find_tensor("cls.weight")) s.n_cls_out = s.n_embd;  // dense + tanh only (jina-reranker-v1 style)
  if (s.n_cls_out < 0 || s.n_cls_out > (int64_t{1} << 20)) spec_error(f, "cls.output.weight has a bad shape");
  if (s.pooling == Pooling::Rank && s.n_cls_out == 0)
    spec_error(f, "pooling_type is rank but the file has no classification head (cls.weight)");
}

namespace {

struct Norm {
  std::vector<float> weight, bias;
  void apply(const float* x, float eps, int64_t n, float* y) const {
    kernels::layer_norm(x, weight.data(), bias.data(), eps, n, y);
  }
};

struct Layer {
  WeightMatrix wq, wk, wv, wo, up, down;
  std::vector<float> bq, bk, bv, bo, b_up, b_down;
  Norm attn_out_norm, out_norm;
};

Norm bind_norm(const Binder& b, const std::string& name, int64_t n) {
  return {b.vector(name + ".weight", n), b.vector(name + ".bias", n)};
}

void add_bias(float* y, const std::vector<float>& bias, int64_t T) {
  const int64_t n = static_cast<int64_t>(bias.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < n; ++j) y[t * n + j] += bias[static_cast<size_t>(j)];
}

class BertEncoder final : public Model {
 public:
  BertEncoder(const GgufFile& f, ThreadPool& pool) : pool_(pool) {
    spec_ = read_model_spec(f);
    const ModelSpec& s = spec_;
    const int64_t E = s.n_embd, D = s.n_head * s.head_dim_k, F = s.n_ff;
    if (s.head_dim_k != s.head_dim_v || D != E)
      throw Error("model '" + f.path() + "': bert needs head_count x head size = embedding_length");
    Binder b(f);
    tok_embd_ = b.matrix("token_embd.weight", E, s.n_vocab);
    if (const TensorInfo* t = b.find("token_types.weight")) {
      if (t->ne[0] != E || t->ne[1] < 1 || t->ne[2] != 1 || t->ne[3] != 1)
        throw Error("model '" + f.path() + "': tensor 'token_types.weight' has shape " + t->shape_string() +
                    ", expected [" + std::to_string(E) + ", types]");
      type0_.resize(static_cast<size_t>(E));
      kernels::get_row(Binder::view(*t), 0, type0_.data());
    }
    const TensorInfo* pos = b.find("position_embd.weight");
    if (!pos) throw Error("model '" + f.path() + "' is missing tensor 'position_embd.weight'");
    if (pos->ne[0] != E || pos->ne[1] < 1 || pos->ne[2] != 1 || pos->ne[3] != 1)
      throw Error("model '" + f.path() + "': tensor 'position_embd.weight' has shape " + pos->shape_string());
    pos_embd_ = Binder::view(*pos);
    max_len_ = std::min(pos->ne[1], s.n_ctx_train);
    embd_norm_ = bind_norm(b, "token_embd_norm", E);
    for (int64_t i = 0; i < s.n_layer; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      Layer& L = layers_.emplace_back();
      L.wq = b.matrix(p + "attn_q.weight", E, D);
      L.wk = b.matrix(p + "attn_k.weight", E, D);
      L.wv = b.matrix(p + "attn_v.weight", E, D);
      L.wo = b.matrix(p + "attn_output.weight", D, E);
      L.bq = b.vector(p + "attn_q.bias", D);
      L.bk = b.vector(p + "attn_k.bias", D);
      L.bv = b.vector(p + "attn_v.bias", D);
      L.bo = b.vector(p + "attn_output.bias", E);
      L.attn_out_norm = bind_norm(b, p + "attn_output_norm", E);
      L.up = b.matrix(p + "ffn_up.weight", E, F);
      L.b_up = b.vector(p + "ffn_up.bias", F);
      L.down = b.matrix(p + "ffn_down.weight", F, E);
      L.b_down = b.vector(p + "ffn_down.bias", E);
      L.out_norm = bind_norm(b, p + "layer_output_norm", E);
    }
    if (s.n_cls_out > 0) {
      cls_ = b.matrix("cls.weight", E, E);
      cls_b_ = b.vector("cls.bias", E);
      if (b.find("cls.output.weight")) {
        cls_out_ = b.matrix("cls.output.weight", E, s.n_cls_out);
        cls_out_b_ = b.vector("cls.output.bias", s.n_cls_out);
        has_cls_out_ = true;
      }
    }
  }

  const ModelSpec& spec() const override { return spec_; }

  Logits forward(const Batch&, KvCache&) override {
    throw Error("this is a '" + std::string(spec_.arch_name()) +
                "' embedding model: it has no language-model head and cannot generate text (use embeddings or rerank)");
  }

  std::vector<float> token_states(const Batch& batch) override;
  std::vector<float> classify(const float* pooled, int64_t n) override;

 private:
  void attention(const std::vector<SeqRun>& runs, const float* q, const float* k, const float* v, float* out);

  ModelSpec spec_;
  ThreadPool& pool_;
  WeightMatrix tok_embd_, pos_embd_;
  std::vector<float> type0_;  // token type 0's row (empty: the file has no token types)
  int64_t max_len_ = 0;
  Norm embd_norm_;
  std::vector<Layer> layers_;
  WeightMatrix cls_, cls_out_;
  std::vector<float> cls_b_, cls_out_b_;
  bool has_cls_out_ = false;
};

// Every token attends to all the tokens of its own sequence. The keys and
// values of a run are contiguous rows, read through the attention kernel's
// paged view with blocks in order.
void BertEncoder::attention(const std::vector<SeqRun>& runs, const float* q, const float* k, const float* v,
                            float* out) {
  const ModelSpec& s = spec_;
  const int64_t H = s.n_head, Dh = s.head_dim_k, D = H * Dh;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  int64_t longest = 0;
  for (const SeqRun& r : runs) longest = std::max(longest, r.end - r.begin);
  std::vector<int32_t> block_ids(static_cast<size_t>((longest + kKvBlockTokens - 1) / kKvBlockTokens));
  std::iota(block_ids.begin(), block_ids.end(), 0);
  std::vector<int64_t> run_of;  // run index of each token
  for (size_t r = 0; r < runs.size(); ++r) run_of.insert(run_of.end(), static_cast<size_t>(runs[r].end - runs[r].begin), static_cast<int64_t>(r));
  const int64_t T = static_cast<int64_t>(run_of.size()), units = T * H;
  pool_.parallel_for_dynamic(units, [&](int64_t i0, int64_t i1, int) {
    std::vector<float> scratch;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / H, h = i % H;
      const SeqRun& r = runs[static_cast<size_t>(run_of[static_cast<size_t>(t)])];
      const int n_pos = static_cast<int>(r.end - r.begin);
      PagedRows keys;
      keys.ids = block_ids.data();
      keys.row_bytes = D * static_cast<int64_t>(sizeof(float));
      keys.block_bytes = keys.row_bytes * kKvBlockTokens;
      keys.offset = h * Dh * static_cast<int64_t>(sizeof(float));
      keys.type = DType::F32;
      PagedRows values = keys;
      keys.base = reinterpret_cast<const uint8_t*>(k + r.begin * D);
      values.base = reinterpret_cast<const uint8_t*>(v + r.begin * D);
      // Bidirectional: one query per tile, seeing all n_pos positions of its sequence.
      kernels::AttendTile at;
      at.q = q + t * D + h * Dh;
      at.q_stride = D;
      at.out = out + t * D + h * Dh;
      at.out_stride = D;
      at.n_tokens = 1;
      at.group = 1;
      at.n_pos0 = n_pos;
      at.dk = Dh;
      at.dv = Dh;
      at.keys = keys;
      at.values = values;
      at.scale = scale;
      scratch.resize(static_cast<size_t>(kernels::attend_scratch(1, Dh, Dh)));
      kernels::attend(at, scratch.data());
    }
  }, std::max<int64_t>(1, units / (8 * pool_.size())));
}

std::vector<float> BertEncoder::token_states(const Batch& batch) {
  const ModelSpec& s = spec_;
  const std::vector<SeqRun> runs = sequence_runs(s, batch, max_len_);
  const int64_t T = static_cast<int64_t>(batch.size()), E = s.n_embd, F = s.n_ff;
  std::vector<float> x(static_cast<size_t>(T * E)), h(x.size()), q(x.size()), k(x.size()), v(x.size()),
      att(x.size()), up(static_cast<size_t>(T * F)), row(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
    float* xt = &x[static_cast<size_t>(t * E)];
    kernels::get_row(tok_embd_, bt.token, xt);
    if (!type0_.empty())
      for (int64_t j = 0; j < E; ++j) xt[j] += type0_[static_cast<size_t>(j)];
    kernels::get_row(pos_embd_, bt.pos, row.data());
    for (int64_t j = 0; j < E; ++j) xt[j] += row[static_cast<size_t>(j)];
    embd_norm_.apply(xt, s.norm_eps, E, xt);
  }
  for (const Layer& L : layers_) {
    const WeightMatrix* w[3] = {&L.wq, &L.wk, &L.wv};
    float* y[3] = {q.data(), k.data(), v.data()};
    kernels::matmul_multi(w, y, 3, x.data(), T, pool_);
    add_bias(q.data(), L.bq, T);
    add_bias(k.data(), L.bk, T);
    add_bias(v.data(), L.bv, T);
    attention(runs, q.data(), k.data(), v.data(), att.data());
    kernels::matmul(L.wo, att.data(), T, h.data(), pool_);
    add_bias(h.data(), L.bo, T);
    for (int64_t i = 0; i < T * E; ++i) h[static_cast<size_t>(i)] += x[static_cast<size_t>(i)];
    for (int64_t t = 0; t < T; ++t) L.attn_out_norm.apply(&h[t * E], s.norm_eps, E, &h[t * E]);
    kernels::matmul(L.up, h.data(), T, up.data(), pool_);
    add_bias(up.data(), L.b_up, T);
    kernels::gelu(up.data(), T * F, up.data());
    kernels::matmul(L.down, up.data(), T, x.data(), pool_);
    add_bias(x.data(), L.b_down, T);
    for (int64_t i = 0; i < T * E; ++i) x[static_cast<size_t>(i)] += h[static_cast<size_t>(i)];
    for (int64_t t = 0; t < T; ++t) L.out_norm.apply(&x[t * E], s.norm_eps, E, &x[t * E]);
  }
  return x;
}

std::vector<float> BertEncoder::classify(const float* pooled, int64_t n) {
  if (spec_.n_cls_out == 0) return Model::classify(pooled, n);
  const int64_t E = spec_.n_embd;
  std::vector<float> dense(static_cast<size_t>(n * E));
  kernels::matmul(cls_, pooled, n, dense.data(), pool_);
  add_bias(dense.data(), cls_b_, n);
  for (float& d : dense) d = std::tanh(d);
  if (!has_cls_out_) return dense;
  std::vector<float> out(static_cast<size_t>(n * spec_.n_cls_out));
  kernels::matmul(cls_out_, dense.data(), n, out.data(), pool_);
  add_bias(out.data(), cls_out_b_, n);
  return out;
}

}  // namespace

std::unique_ptr<Model> make_bert_encoder(const GgufFile& file, ThreadPool& pool) {
  return std::make_unique<BertEncoder>(file, pool);
}

}  // namespace volga
