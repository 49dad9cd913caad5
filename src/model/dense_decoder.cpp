// The decoder-only transformer shared by the llama, qwen2, qwen3 and qwen3moe
// architectures: pre-norm RMSNorm, grouped-query attention with RoPE, SwiGLU
// feed-forward. Differences are rows of the architecture table (model/arch.h):
// qwen2 adds q/k/v biases, qwen3 normalises each q/k head before RoPE, llama
// uses adjacent-pair RoPE and may
// carry llama3 frequency factors (rope_freqs.weight); qwen3moe replaces the
// feed-forward by routed experts (softmax router, top-k, weights renormalised).
#include <algorithm>
#include <cmath>
#include <optional>

#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/arch.h"
#include "model/architectures.h"
#include "model/blocks.h"
#include "model/model.h"
#include "model/rope.h"
#include "util/error.h"

namespace volga {

namespace {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  WeightMatrix wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;          // empty when absent
  std::vector<float> q_norm, k_norm;      // qwen3, per head
  FfnWeights ffn;
  MoeWeights moe;  // qwen3moe
};

class DenseDecoder final : public Model {
 public:
  DenseDecoder(const GgufFile& f, ThreadPool& pool, const StageRange& range) : pool_(pool) {
    spec_ = read_model_spec(f);
    const ModelSpec& s = spec_;
    Binder b(f);
    const int64_t E = s.n_embd, qd = s.n_head * s.head_dim_k, kd = s.n_head_kv * s.head_dim_k,
                  vd = s.n_head_kv * s.head_dim_v;
    first_ = range.first;
    end_ = range.end < 0 ? s.n_layer : range.end;
    has_head_ = range.head;
    if (has_head_) head_ = bind_head(b, s);
    if (b.find("rope_freqs.weight")) rope_freq_factors_ = b.vector("rope_freqs.weight", s.n_rot / 2);
    const ArchTraits& arch = s.traits();
    // Layers are bound one by one: metadata sizes are only trusted once the
    // tensors they describe have been found with matching shapes.
    for (int64_t i = first_; i < end_; ++i) {  // a stage binds (and reads) only its own layers
      const std::string p = "blk." + std::to_string(i) + ".";
      LayerWeights& L = layers_.emplace_back();
      L.attn_norm = b.vector(p + "attn_norm.weight", E);
      L.wq = b.matrix(p + "attn_q.weight", E, qd);
      L.wk = b.matrix(p + "attn_k.weight", E, kd);
      L.wv = b.matrix(p + "attn_v.weight", E, vd);
      L.wo = b.matrix(p + "attn_output.weight", s.n_head * s.head_dim_v, E);
      const bool need_bias = arch.qkv_bias;
      L.bq = b.vector(p + "attn_q.bias", qd, need_bias);
      L.bk = b.vector(p + "attn_k.bias", kd, need_bias);
      L.bv = b.vector(p + "attn_v.bias", vd, need_bias);
      L.q_norm = b.vector(p + "attn_q_norm.weight", s.head_dim_k, arch.qk_norm);
      L.k_norm = b.vector(p + "attn_k_norm.weight", s.head_dim_k, arch.qk_norm);
      L.ffn_norm = b.vector(p + "ffn_norm.weight", E);
      if (s.is_moe_layer(i)) L.moe = bind_moe(b, p, s);
      else L.ffn = bind_ffn(b, p, "", E, s.n_ff);
    }
    rope_.emplace(s, rope_freq_factors_);
  }

  const ModelSpec& spec() const override { return spec_; }

  Logits forward(const Batch& batch, KvCache& cache) override {
    std::vector<float> x = embedded_layers(batch, cache);
    return output(batch, x.data());
  }

  void embed(const Batch& batch, std::vector<float>& x) override {
    if (!has_head_) throw Error("internal: this pipeline stage has no token embedding");
    embed_tokens(spec_, head_, batch, x);
  }
  void run_layers(const Batch& batch, KvCache& cache, float* x) override;
  Logits output(const Batch& batch, const float* x) override {
    if (!has_head_) throw Error("internal: this pipeline stage has no output head");
    return output_logits(spec_, batch, x, head_.output_norm, head_.output, pool_);
  }

  // Decoder embedding models (Qwen3-Embedding): the states after the output
  // norm, computed with causal attention in a cache of their own.
  std::vector<float> token_states(const Batch& batch) override {
    const std::vector<SeqRun> runs = sequence_runs(spec_, batch, spec_.n_ctx_train);
    int32_t n_seq = 0;
    int64_t longest = 0;
    for (const SeqRun& r : runs) {
      if (r.seq < 0 || r.seq >= 4096) throw Error("sequence id " + std::to_string(r.seq) + " is out of range");
      n_seq = std::max(n_seq, r.seq + 1);
      longest = std::max(longest, r.end - r.begin);
    }
    if (runs.empty()) return {};
    KvCache cache(spec_, n_seq, static_cast<int>(longest));
    std::vector<float> x = embedded_layers(batch, cache);
    const int64_t E = spec_.n_embd;
    for (size_t t = 0; t < batch.size(); ++t)
      kernels::rms_norm(&x[t * E], head_.output_norm.data(), spec_.rms_eps, E, &x[t * E]);
    return x;
  }

 private:
  // The whole model's layers over the embedded batch (forward() without the head).
  std::vector<float> embedded_layers(const Batch& batch, KvCache& cache) {
    prepare_batch(spec_, batch, cache);
    std::vector<float> x;
    embed(batch, x);
    run_layers(batch, cache, x.data());
    cache.commit(batch);
    return x;
  }
  void attention(int64_t layer, const Batch& batch, KvCache& cache, const float* q, float* out);

  ModelSpec spec_;
  ThreadPool& pool_;
  HeadWeights head_;
  std::vector<float> rope_freq_factors_;
  std::optional<RopeTable> rope_;
  std::vector<LayerWeights> layers_;  // layers [first_, end_)
  int64_t first_ = 0, end_ = 0;
  bool has_head_ = true;
};

void DenseDecoder::attention(int64_t layer, const Batch& batch, KvCache& cache, const float* q,
                             float* out) {
  const ModelSpec& s = spec_;
  AttentionShape a;
  a.n_head = s.n_head;
  a.n_head_kv = s.n_head_kv;
  a.dk = s.head_dim_k;
  a.dv = s.head_dim_v;
  a.q_stride = s.n_head * s.head_dim_k;
  a.k_head_stride = s.head_dim_k;
  a.v_head_stride = s.head_dim_v;
  a.scale = s.attn_scale > 0 ? s.attn_scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim_k));
  paged_attention(a, batch, cache, layer, q, out, pool_, phases_);
}

// The stage's decoder layers over the batch's hidden states x, in place.
void DenseDecoder::run_layers(const Batch& batch, KvCache& cache, float* x) {
  const ModelSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(batch.size()), E = s.n_embd;
  const int64_t Dk = s.head_dim_k, Dv = s.head_dim_v;
  const int64_t qd = s.n_head * Dk, kd = s.n_head_kv * Dk, vd = s.n_head_kv * Dv;
  const int n_pairs = static_cast<int>(s.n_rot / 2);
  const bool neox = s.rope_style == RopeStyle::Neox;

  std::vector<float> h(static_cast<size_t>(T * E));
  std::vector<float> q(static_cast<size_t>(T * qd)), k(static_cast<size_t>(T * kd)),
      v(static_cast<size_t>(T * vd)), att(static_cast<size_t>(T * s.n_head * Dv)), ffn_out(h.size());
  // cos/sin per token and rotated pair, computed once for all layers.
  std::vector<float> cosv, sinv;
  rope_->compute(batch, cosv, sinv);

  for (int64_t l = first_; l < end_; ++l) {
    const LayerWeights& L = layers_[static_cast<size_t>(l - first_)];
    for (int64_t t = 0; t < T; ++t) kernels::rms_norm(&x[t * E], L.attn_norm.data(), s.rms_eps, E, &h[t * E]);
    {
      const WeightMatrix* w[3] = {&L.wq, &L.wk, &L.wv};
      float* y[3] = {q.data(), k.data(), v.data()};
      kernels::matmul_multi(w, y, 3, h.data(), T, pool_);
    }
    for (int64_t t = 0; t < T; ++t) {
      if (!L.bq.empty()) {
        for (int64_t j = 0; j < qd; ++j) q[t * qd + j] += L.bq[j];
        for (int64_t j = 0; j < kd; ++j) k[t * kd + j] += L.bk[j];
        for (int64_t j = 0; j < vd; ++j) v[t * vd + j] += L.bv[j];
      }
      const float* c = &cosv[t * n_pairs];
      const float* sn = &sinv[t * n_pairs];
      for (int64_t hh = 0; hh < s.n_head; ++hh) {
        float* qh = &q[t * qd + hh * Dk];
        if (!L.q_norm.empty()) kernels::rms_norm(qh, L.q_norm.data(), s.rms_eps, Dk, qh);
        kernels::rope(qh, c, sn, n_pairs, neox);
      }
      for (int64_t hh = 0; hh < s.n_head_kv; ++hh) {
        float* kh = &k[t * kd + hh * Dk];
        if (!L.k_norm.empty()) kernels::rms_norm(kh, L.k_norm.data(), s.rms_eps, Dk, kh);
        kernels::rope(kh, c, sn, n_pairs, neox);
      }
      const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
      cache.write(l, bt.seq, bt.pos, &k[t * kd], &v[t * vd]);
    }
    attention(l, batch, cache, q.data(), att.data());
    kernels::matmul(L.wo, att.data(), T, h.data(), pool_);
    for (int64_t i = 0; i < T * E; ++i) x[i] += h[i];
    residual_ffn(s, l, L.ffn_norm, L.ffn, L.moe, x, T, h.data(), ffn_out.data(), pool_, phases_);
  }
}

}  // namespace

std::unique_ptr<Model> make_dense_decoder(const GgufFile& file, ThreadPool& pool) {
  return std::make_unique<DenseDecoder>(file, pool, StageRange{});
}

std::unique_ptr<Model> make_dense_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range) {
  return std::make_unique<DenseDecoder>(file, pool, range);
}

}  // namespace volga
