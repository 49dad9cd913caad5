// The decoder-only transformer shared by the llama, qwen2, qwen3 and qwen3moe
// architectures: pre-norm RMSNorm, grouped-query attention with RoPE, SwiGLU
// feed-forward. Differences are data-driven: qwen2 adds q/k/v biases, qwen3
// normalises each q/k head before RoPE, llama uses adjacent-pair RoPE and may
// carry llama3 frequency factors (rope_freqs.weight); qwen3moe replaces the
// feed-forward by routed experts (softmax router, top-k, weights renormalised).
#include <algorithm>
#include <cmath>
#include <optional>

#include "format/gguf.h"
#include "kernels/ops.h"
#include "model/architectures.h"
#include "model/model.h"
#include "tensor/quant.h"
#include "util/error.h"

namespace volga {

namespace {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  WeightMatrix wq, wk, wv, wo;
  std::vector<float> bq, bk, bv;          // empty when absent
  std::vector<float> q_norm, k_norm;      // qwen3, per head
  WeightMatrix w_gate, w_up, w_down;
  // Mixture of experts: router [n_expert x E] and one matrix view per expert.
  WeightMatrix gate_inp;
  std::vector<WeightMatrix> gate_exps, up_exps, down_exps;
};

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const TensorInfo* find(const std::string& name) const { return f_.find_tensor(name); }

  const TensorInfo& require(const std::string& name, std::vector<int64_t> shape) const {
    const TensorInfo* t = f_.find_tensor(name);
    if (!t) throw Error("model '" + f_.path() + "' is missing tensor '" + name + "'");
    check_shape(*t, shape);
    return *t;
  }

  WeightMatrix matrix(const std::string& name, int64_t cols, int64_t rows) const {
    return view(require(name, {cols, rows}));
  }

  // A [cols, rows, n] tensor as n matrices (expert weights, ffn_*_exps).
  std::vector<WeightMatrix> matrices(const std::string& name, int64_t cols, int64_t rows, int64_t n) const {
    WeightMatrix all = view(require(name, {cols, rows, n}));
    std::vector<WeightMatrix> out(static_cast<size_t>(n), all);
    for (int64_t e = 0; e < n; ++e) {
      out[static_cast<size_t>(e)].rows = rows;
      out[static_cast<size_t>(e)].data = all.data + e * rows * all.row_stride;
    }
    return out;
  }

  static WeightMatrix view(const TensorInfo& t) {
    WeightMatrix m;
    m.type = t.type;
    m.cols = t.ne[0];
    m.rows = t.ne[1] * t.ne[2] * t.ne[3];
    m.row_stride = row_bytes(t.type, t.ne[0]);
    m.data = t.data;
    return m;
  }

  std::vector<float> vector(const std::string& name, int64_t n, bool required = true) const {
    const TensorInfo* t = f_.find_tensor(name);
    if (!t) {
      if (required) throw Error("model '" + f_.path() + "' is missing tensor '" + name + "'");
      return {};
    }
    check_shape(*t, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t->type, t->data, v.data(), n);
    return v;
  }

 private:
  void check_shape(const TensorInfo& t, const std::vector<int64_t>& shape) const {
    bool ok = true;
    for (int d = 0; d < 4; ++d) {
      int64_t want = d < static_cast<int>(shape.size()) ? shape[d] : 1;
      ok &= t.ne[d] == want;
    }
    if (!ok) {
      std::string want = "[";
      for (size_t d = 0; d < shape.size(); ++d) want += (d ? ", " : "") + std::to_string(shape[d]);
      throw Error("model '" + f_.path() + "': tensor '" + t.name + "' has shape " + t.shape_string() +
                  ", expected " + want + "]");
    }
  }
  const GgufFile& f_;
};

class DenseDecoder final : public Model {
 public:
  DenseDecoder(const GgufFile& f, ThreadPool& pool) : pool_(pool) {
    spec_ = read_model_spec(f);
    const ModelSpec& s = spec_;
    Binder b(f);
    const int64_t E = s.n_embd, qd = s.n_head * s.head_dim_k, kd = s.n_head_kv * s.head_dim_k,
                  vd = s.n_head_kv * s.head_dim_v;
    tok_embd_ = b.matrix("token_embd.weight", E, s.n_vocab);
    output_norm_ = b.vector("output_norm.weight", E);
    output_ = b.find("output.weight") ? b.matrix("output.weight", E, s.n_vocab) : tok_embd_;
    if (b.find("rope_freqs.weight")) rope_freq_factors_ = b.vector("rope_freqs.weight", s.n_rot / 2);
    const bool qwen3 = s.arch == "qwen3" || s.arch == "qwen3moe";
    // Layers are bound one by one: metadata sizes are only trusted once the
    // tensors they describe have been found with matching shapes.
    for (int64_t i = 0; i < s.n_layer; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      LayerWeights& L = layers_.emplace_back();
      L.attn_norm = b.vector(p + "attn_norm.weight", E);
      L.wq = b.matrix(p + "attn_q.weight", E, qd);
      L.wk = b.matrix(p + "attn_k.weight", E, kd);
      L.wv = b.matrix(p + "attn_v.weight", E, vd);
      L.wo = b.matrix(p + "attn_output.weight", s.n_head * s.head_dim_v, E);
      const bool need_bias = s.arch == "qwen2";
      L.bq = b.vector(p + "attn_q.bias", qd, need_bias);
      L.bk = b.vector(p + "attn_k.bias", kd, need_bias);
      L.bv = b.vector(p + "attn_v.bias", vd, need_bias);
      L.q_norm = b.vector(p + "attn_q_norm.weight", s.head_dim_k, qwen3);
      L.k_norm = b.vector(p + "attn_k_norm.weight", s.head_dim_k, qwen3);
      L.ffn_norm = b.vector(p + "ffn_norm.weight", E);
      if (s.n_expert > 0) {
        const int64_t F = s.n_ff_expert, X = s.n_expert;
        L.gate_inp = b.matrix(p + "ffn_gate_inp.weight", E, X);
        L.gate_exps = b.matrices(p + "ffn_gate_exps.weight", E, F, X);
        L.up_exps = b.matrices(p + "ffn_up_exps.weight", E, F, X);
        L.down_exps = b.matrices(p + "ffn_down_exps.weight", F, E, X);
        continue;
      }
      L.w_gate = b.matrix(p + "ffn_gate.weight", E, s.n_ff);
      L.w_up = b.matrix(p + "ffn_up.weight", E, s.n_ff);
      L.w_down = b.matrix(p + "ffn_down.weight", s.n_ff, E);
    }
    // Inverse frequencies of the rotated pairs.
    inv_freq_.resize(static_cast<size_t>(s.n_rot / 2));
    for (int64_t i = 0; i < s.n_rot / 2; ++i) {
      double f = std::pow(static_cast<double>(s.rope_freq_base), -2.0 * i / static_cast<double>(s.n_rot));
      if (!rope_freq_factors_.empty()) f /= rope_freq_factors_[static_cast<size_t>(i)];
      inv_freq_[static_cast<size_t>(i)] = f;
    }
  }

  const ModelSpec& spec() const override { return spec_; }

  Logits forward(const Batch& batch, KvCache& cache) override;

 private:
  void validate(const Batch& batch, const KvCache& cache) const;
  void attention(int64_t layer, const Batch& batch, KvCache& cache, const float* q, float* out);
  void moe(const LayerWeights& L, const float* h, int64_t T, float* out);

  ModelSpec spec_;
  ThreadPool& pool_;
  WeightMatrix tok_embd_, output_;
  std::vector<float> output_norm_;
  std::vector<float> rope_freq_factors_;
  std::vector<double> inv_freq_;
  std::vector<LayerWeights> layers_;
};

void DenseDecoder::validate(const Batch& batch, const KvCache& cache) const {
  if (batch.empty()) throw Error("forward: empty batch");
  std::vector<int> next(static_cast<size_t>(cache.n_seq()));
  for (int s = 0; s < cache.n_seq(); ++s) next[static_cast<size_t>(s)] = cache.length(s);
  for (const BatchToken& t : batch.tokens) {
    if (t.token < 0 || t.token >= spec_.n_vocab)
      throw Error("token id " + std::to_string(t.token) + " is outside the vocabulary (size " +
                  std::to_string(spec_.n_vocab) + ")");
    if (t.seq < 0 || t.seq >= cache.n_seq())
      throw Error("sequence id " + std::to_string(t.seq) + " is outside the KV cache (" +
                  std::to_string(cache.n_seq()) + " sequences)");
    int& n = next[static_cast<size_t>(t.seq)];
    if (t.pos != n)
      throw Error("sequence " + std::to_string(t.seq) + ": token at position " + std::to_string(t.pos) +
                  " does not continue the cache, which ends at " + std::to_string(n));
    if (t.pos >= cache.n_ctx())
      throw Error("sequence " + std::to_string(t.seq) + " exceeds the context size of " +
                  std::to_string(cache.n_ctx()) + " tokens");
    ++n;
  }
}

void DenseDecoder::attention(int64_t layer, const Batch& batch, KvCache& cache, const float* q,
                             float* out) {
  const ModelSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(batch.size());
  const int64_t Dk = s.head_dim_k, Dv = s.head_dim_v, group = s.n_head / s.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dk));
  pool_.parallel_for(T * s.n_head, [&](int64_t i0, int64_t i1, int) {
    std::vector<float> scores;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / s.n_head, h = i % s.n_head, hk = h / group;
      const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
      const int n_pos = bt.pos + 1;
      const float* qh = q + t * s.n_head * Dk + h * Dk;
      scores.resize(static_cast<size_t>(n_pos));
      for (int p = 0; p < n_pos; ++p)
        scores[static_cast<size_t>(p)] = kernels::dot(qh, cache.key(layer, bt.seq, p) + hk * Dk, Dk) * scale;
      kernels::softmax(scores.data(), n_pos);
      float* o = out + t * s.n_head * Dv + h * Dv;
      for (int64_t d = 0; d < Dv; ++d) o[d] = 0;
      for (int p = 0; p < n_pos; ++p)
        kernels::axpy(scores[static_cast<size_t>(p)], cache.value(layer, bt.seq, p) + hk * Dv, o, Dv);
    }
  });
}

// Routed experts: softmax over the router logits, the top n_expert_used
// experts per token with their probabilities renormalised to sum to one.
// Tokens are grouped by expert, so each selected expert's weights are read
// once per batch and unselected experts not at all.
void DenseDecoder::moe(const LayerWeights& L, const float* h, int64_t T, float* out) {
  const ModelSpec& s = spec_;
  const int64_t E = s.n_embd, X = s.n_expert, K = s.n_expert_used, F = s.n_ff_expert;
  std::vector<float> probs(static_cast<size_t>(T * X));
  kernels::matmul(L.gate_inp, h, T, probs.data(), pool_);
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(X));
  std::vector<int64_t> order(static_cast<size_t>(X));
  for (int64_t t = 0; t < T; ++t) {
    float* p = &probs[static_cast<size_t>(t * X)];
    kernels::softmax(p, static_cast<int>(X));
    for (int64_t e = 0; e < X; ++e) order[static_cast<size_t>(e)] = e;
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0;
    for (int64_t j = 0; j < K; ++j) sum += p[order[static_cast<size_t>(j)]];
    for (int64_t j = 0; j < K; ++j) {
      const int64_t e = order[static_cast<size_t>(j)];
      routed[static_cast<size_t>(e)].push_back({t, p[e] / sum});
    }
  }
  std::fill(out, out + T * E, 0.0f);
  std::vector<float> xs, gate, up, ys;
  for (int64_t e = 0; e < X; ++e) {
    const auto& list = routed[static_cast<size_t>(e)];
    if (list.empty()) continue;
    const int64_t n = static_cast<int64_t>(list.size());
    xs.resize(static_cast<size_t>(n * E));
    for (int64_t j = 0; j < n; ++j) std::copy_n(h + list[static_cast<size_t>(j)].first * E, E, &xs[static_cast<size_t>(j * E)]);
    gate.resize(static_cast<size_t>(n * F));
    up.resize(gate.size());
    ys.resize(xs.size());
    kernels::matmul(L.gate_exps[static_cast<size_t>(e)], xs.data(), n, gate.data(), pool_);
    kernels::matmul(L.up_exps[static_cast<size_t>(e)], xs.data(), n, up.data(), pool_);
    kernels::swiglu(gate.data(), up.data(), n * F, gate.data());
    kernels::matmul(L.down_exps[static_cast<size_t>(e)], gate.data(), n, ys.data(), pool_);
    for (int64_t j = 0; j < n; ++j)
      kernels::axpy(list[static_cast<size_t>(j)].second, &ys[static_cast<size_t>(j * E)],
                    out + list[static_cast<size_t>(j)].first * E, E);
  }
}

Logits DenseDecoder::forward(const Batch& batch, KvCache& cache) {
  validate(batch, cache);
  const ModelSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(batch.size()), E = s.n_embd;
  const int64_t Dk = s.head_dim_k, Dv = s.head_dim_v;
  const int64_t qd = s.n_head * Dk, kd = s.n_head_kv * Dk, vd = s.n_head_kv * Dv;
  const int n_pairs = static_cast<int>(s.n_rot / 2);
  const bool neox = s.rope_style == RopeStyle::Neox;

  std::vector<float> x(static_cast<size_t>(T * E)), h(x.size());
  std::vector<float> q(static_cast<size_t>(T * qd)), k(static_cast<size_t>(T * kd)),
      v(static_cast<size_t>(T * vd)), att(static_cast<size_t>(T * s.n_head * Dv));
  std::vector<float> gate(static_cast<size_t>(T * s.n_ff)), up(gate.size()), moe_out;
  // cos/sin per token and rotated pair, computed in double once for all layers.
  std::vector<float> cosv(static_cast<size_t>(T * n_pairs)), sinv(cosv.size());
  for (int64_t t = 0; t < T; ++t) {
    const double pos = batch.tokens[static_cast<size_t>(t)].pos * static_cast<double>(s.rope_freq_scale);
    for (int i = 0; i < n_pairs; ++i) {
      const double theta = pos * inv_freq_[static_cast<size_t>(i)];
      cosv[static_cast<size_t>(t * n_pairs + i)] = static_cast<float>(std::cos(theta));
      sinv[static_cast<size_t>(t * n_pairs + i)] = static_cast<float>(std::sin(theta));
    }
    kernels::get_row(tok_embd_, batch.tokens[static_cast<size_t>(t)].token, x.data() + t * E);
  }

  for (int64_t l = 0; l < s.n_layer; ++l) {
    const LayerWeights& L = layers_[static_cast<size_t>(l)];
    for (int64_t t = 0; t < T; ++t) kernels::rms_norm(&x[t * E], L.attn_norm.data(), s.rms_eps, E, &h[t * E]);
    kernels::matmul(L.wq, h.data(), T, q.data(), pool_);
    kernels::matmul(L.wk, h.data(), T, k.data(), pool_);
    kernels::matmul(L.wv, h.data(), T, v.data(), pool_);
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
      std::copy_n(&k[t * kd], kd, cache.key(l, bt.seq, bt.pos));
      std::copy_n(&v[t * vd], vd, cache.value(l, bt.seq, bt.pos));
    }
    attention(l, batch, cache, q.data(), att.data());
    kernels::matmul(L.wo, att.data(), T, h.data(), pool_);
    for (int64_t i = 0; i < T * E; ++i) x[i] += h[i];

    for (int64_t t = 0; t < T; ++t) kernels::rms_norm(&x[t * E], L.ffn_norm.data(), s.rms_eps, E, &h[t * E]);
    if (s.n_expert > 0) {
      moe_out.resize(x.size());
      moe(L, h.data(), T, moe_out.data());
      for (int64_t i = 0; i < T * E; ++i) x[i] += moe_out[i];
      continue;
    }
    kernels::matmul(L.w_gate, h.data(), T, gate.data(), pool_);
    kernels::matmul(L.w_up, h.data(), T, up.data(), pool_);
    kernels::swiglu(gate.data(), up.data(), T * s.n_ff, gate.data());
    kernels::matmul(L.w_down, gate.data(), T, h.data(), pool_);
    for (int64_t i = 0; i < T * E; ++i) x[i] += h[i];
  }
  for (const BatchToken& t : batch.tokens) cache.set_length(t.seq, t.pos + 1);

  Logits out;
  out.n_vocab = s.n_vocab;
  std::vector<float> sel;
  for (int64_t t = 0; t < T; ++t) {
    if (!batch.tokens[static_cast<size_t>(t)].want_logits) continue;
    out.batch_index.push_back(static_cast<int32_t>(t));
    sel.resize(sel.size() + static_cast<size_t>(E));
    kernels::rms_norm(&x[t * E], output_norm_.data(), s.rms_eps, E, &sel[sel.size() - static_cast<size_t>(E)]);
  }
  out.data.resize(static_cast<size_t>(out.rows() * s.n_vocab));
  if (out.rows() > 0) kernels::matmul(output_, sel.data(), out.rows(), out.data.data(), pool_);
  return out;
}

}  // namespace

std::unique_ptr<Model> make_dense_decoder(const GgufFile& file, ThreadPool& pool) {
  return std::make_unique<DenseDecoder>(file, pool);
}

}  // namespace volga
