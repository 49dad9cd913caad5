// Qwen3.5 / 3.6 hybrids (GGUF architectures qwen35 and qwen35moe): three of
// every four layers (full_attention_interval) are Gated DeltaNet linear
// attention with a recurrent state per sequence, the others gated full
// attention with partial RoPE. Every layer then has a post-attention RMSNorm
// and a SwiGLU feed-forward (qwen35) or routed experts plus a sigmoid-gated
// shared expert (qwen35moe). Multi-token-prediction (nextn) layers stored
// after the decoder layers are not part of the forward pass and are ignored.
//
// Facts carried over from the published definition and llama.cpp's
// converter (the GGUF layout this file reads):
//   - norm weights are stored with the "+1" of the zero-centred RMSNorm
//     already added (except ssm_norm), so every RMSNorm is x / rms * w;
//   - ssm_a holds -exp(A_log); the log decay is ssm_a * softplus(alpha + ssm_dt.bias);
//   - ssm_conv1d is [conv_dim rows x d_conv taps], the last tap on the current token;
//   - attn_qkv's output channels are q (key heads), k (key heads), v (value heads);
//   - value heads are stored in "tiled" order: value head h uses key head
//     h % group_count (the converter reorders Hugging Face's grouped order);
//   - attn_q yields, per head, the query then the output gate (head size each);
//   - rope.dimension_sections cover the rotated pairs; text positions are the
//     same in every section, so the rotation is NeoX-style over rope.dimension_count.
//
// The DeltaNet runs in its recurrent form for prefill and decode alike: each
// token's arithmetic is the same whatever batch it came in, so chunked
// prefill, decode, interleaved sequences and prefixes restored from a state
// snapshot give bit-identical results. The chunked parallel (WY / UT
// transform) form cannot keep that: a token's output there is the chunk
// start's state times q plus an intra-chunk attention term, and its state
// update goes through the chunk's triangular solve, so the rounding of every
// sum depends on where the chunk starts, i.e. on how the prompt was split
// into batches. Prefill speed comes instead from the fused scan kernel
// (kernels/deltanet.h: two passes over the state per token, register tiles)
// with every (sequence, value head) pair a unit on the thread pool.
#include <algorithm>
#include <cmath>
#include <optional>

#include "format/gguf.h"
#include "kernels/deltanet.h"
#include "kernels/ops.h"
#include "model/arch.h"
#include "model/architectures.h"
#include "model/blocks.h"
#include "model/model.h"
#include "model/rope.h"
#include "util/error.h"

namespace volga {

namespace {

[[noreturn]] void bad(const GgufFile& f, const std::string& what) { spec_error(f, what); }

}  // namespace

void read_qwen35_hparams(const GgufFile& f, const std::string& p, ModelSpec& s) {
  auto req = [&](const char* k) { return spec_positive(f, p + k, f.get_int(p + k)); };
  s.ssm_d_conv = req("ssm.conv_kernel");
  s.ssm_d_state = req("ssm.state_size");
  s.ssm_n_group = req("ssm.group_count");
  s.ssm_dt_rank = req("ssm.time_step_rank");
  const int64_t d_inner = req("ssm.inner_size");
  if (s.ssm_d_conv < 2 || s.ssm_d_conv > 64) bad(f, "metadata '" + p + "ssm.conv_kernel' must be between 2 and 64");
  if (s.ssm_d_state > 4096) bad(f, "metadata '" + p + "ssm.state_size' is out of range");
  if (s.ssm_dt_rank % s.ssm_n_group != 0)
    bad(f, "metadata '" + p + "ssm.time_step_rank' (" + std::to_string(s.ssm_dt_rank) +
               " value heads) is not a multiple of '" + p + "ssm.group_count' (" + std::to_string(s.ssm_n_group) +
               " key heads)");
  if (d_inner != s.ssm_d_state * s.ssm_dt_rank)
    bad(f, "metadata '" + p + "ssm.inner_size' = " + std::to_string(d_inner) + " does not match state_size " +
               std::to_string(s.ssm_d_state) + " x time_step_rank " + std::to_string(s.ssm_dt_rank));
  const int64_t interval = f.get_int_opt(p + "full_attention_interval").value_or(4);
  if (interval <= 0 || interval > s.n_layer)
    bad(f, "metadata '" + p + "full_attention_interval' = " + std::to_string(interval) +
               " must be between 1 and the layer count " + std::to_string(s.n_layer));
  s.full_attn_interval = interval;
  if (s.head_dim_k != s.head_dim_v)
    bad(f, "attention.key_length and attention.value_length must be equal (" + std::to_string(s.head_dim_k) +
               " / " + std::to_string(s.head_dim_v) + ")");
  const std::string sec_key = p + "rope.dimension_sections";
  const GgufValue* sec_value = f.find(sec_key);
  if (!sec_value) bad(f, "missing metadata '" + sec_key + "'");
  if (sec_value->type != GgufType::ARRAY || sec_value->array.empty() || sec_value->array.size() > 4)
    bad(f, "metadata '" + sec_key + "' must be an array of 1 to 4 section sizes");
  const auto& sec = sec_value->array;
  int64_t sum = 0;
  for (size_t i = 0; i < sec.size(); ++i) {
    if (!sec[i].is_integer()) bad(f, "metadata '" + sec_key + "' must hold integers");
    const bool is_signed = sec[i].type == GgufType::INT8 || sec[i].type == GgufType::INT16 ||
                           sec[i].type == GgufType::INT32 || sec[i].type == GgufType::INT64;
    const int64_t v = is_signed ? sec[i].i : static_cast<int64_t>(std::min<uint64_t>(sec[i].u, 1u << 30));
    if (v < 0 || v > 4096) bad(f, "metadata '" + sec_key + "' has a negative or huge section");
    s.rope_sections[i] = v;
    sum += v;
  }
  if (sum * 2 != s.n_rot)
    bad(f, "metadata '" + sec_key + "' sections sum to " + std::to_string(sum) + " pairs, but rope.dimension_count " +
               std::to_string(s.n_rot) + " rotates " + std::to_string(s.n_rot / 2));
  if (s.n_expert > 0) {
    const auto shexp = f.get_int_opt(p + "expert_shared_feed_forward_length");
    s.n_ff_shexp = spec_positive(f, p + "expert_shared_feed_forward_length", shexp.value_or(s.n_ff));
  }
}

namespace {

struct DeltaNetWeights {
  WeightMatrix qkv, gate, beta, alpha, out;  // attn_qkv, attn_gate (z), ssm_beta, ssm_alpha, ssm_out
  std::vector<float> conv;                   // [d_conv][channels], tap-major (kernels/deltanet.h)
  std::vector<float> dt_bias, a, norm;       // per value head (dt, a); per value dim (norm)
};

struct GatedAttentionWeights {
  WeightMatrix wq, wk, wv, wo;  // wq yields query + gate per head
  std::vector<float> q_norm, k_norm;
};

struct HybridLayer {
  std::vector<float> attn_norm, post_norm;
  bool recurrent = false;
  DeltaNetWeights dn;
  GatedAttentionWeights att;
  FfnWeights ffn;
  MoeWeights moe;
  std::vector<float> shexp_gate;  // ffn_gate_inp_shexp (qwen35moe)
};

struct LayerStates;

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
float silu(float x) { return x / (1.0f + std::exp(-x)); }

class Qwen35Model final : public Model {
 public:
  Qwen35Model(const GgufFile& f, ThreadPool& pool) : pool_(pool) {
    spec_ = read_model_spec(f);
    const ModelSpec& s = spec_;
    Binder b(f);
    head_ = bind_head(b, s);
    for (int64_t i = 0; i < s.n_layer; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      HybridLayer& L = layers_.emplace_back();
      L.attn_norm = b.vector(p + "attn_norm.weight", s.n_embd);
      L.post_norm = b.vector(p + "post_attention_norm.weight", s.n_embd);
      L.recurrent = s.is_recurrent_layer(i);
      if (L.recurrent) bind_deltanet(b, p, L.dn);
      else bind_attention(b, p, L.att);
      if (s.n_expert > 0) {
        L.moe = bind_moe(b, p, s);
        L.moe.shared = bind_ffn(b, p, "_shexp", s.n_embd, s.n_ff_shexp);
        L.shexp_gate = b.vector(p + "ffn_gate_inp_shexp.weight", s.n_embd);
      } else {
        L.ffn = bind_ffn(b, p, "", s.n_embd, s.n_ff);
      }
    }
    rope_.emplace(s, std::vector<float>{});
  }

  const ModelSpec& spec() const override { return spec_; }
  Logits forward(const Batch& batch, KvCache& cache) override;

 private:
  void bind_deltanet(const Binder& b, const std::string& p, DeltaNetWeights& w) const;
  void bind_attention(const Binder& b, const std::string& p, GatedAttentionWeights& w) const;
  void attention_layer(int64_t l, const Batch& batch, KvCache& cache, const float* h, float* out);
  void deltanet_layer(int64_t l, const Batch& batch, KvCache& cache, const float* h, float* out);
  void convolve(const DeltaNetWeights& w, const Batch& batch, const LayerStates& st, const float* qkv,
                float* conv_out) const;
  void prepare_gates(const DeltaNetWeights& w, int64_t T, float* conv_out, float* alpha, float* beta) const;
  void scan(const Batch& batch, const LayerStates& st, const float* conv_out, const float* alpha, const float* beta,
            float* o);
  void feed_forward(const HybridLayer& L, float* x, int64_t T);

  ModelSpec spec_;
  ThreadPool& pool_;
  HeadWeights head_;
  std::optional<RopeTable> rope_;
  std::vector<HybridLayer> layers_;
  std::vector<float> cos_, sin_;  // this batch's rotation
};

void Qwen35Model::bind_deltanet(const Binder& b, const std::string& p, DeltaNetWeights& w) const {
  const ModelSpec& s = spec_;
  const int64_t E = s.n_embd, C = s.ssm_conv_channels(), Hv = s.ssm_dt_rank, Vd = Hv * s.ssm_d_state;
  w.qkv = b.matrix(p + "attn_qkv.weight", E, C);
  w.gate = b.matrix(p + "attn_gate.weight", E, Vd);
  w.beta = b.matrix(p + "ssm_beta.weight", E, Hv);
  w.alpha = b.matrix(p + "ssm_alpha.weight", E, Hv);
  w.out = b.matrix(p + "ssm_out.weight", Vd, E);
  const WeightMatrix conv = b.matrix(p + "ssm_conv1d.weight", s.ssm_d_conv, C);
  w.conv.resize(static_cast<size_t>(C * s.ssm_d_conv));
  std::vector<float> taps(static_cast<size_t>(s.ssm_d_conv));
  for (int64_t c = 0; c < C; ++c) {
    kernels::get_row(conv, c, taps.data());
    for (int64_t i = 0; i < s.ssm_d_conv; ++i) w.conv[static_cast<size_t>(i * C + c)] = taps[static_cast<size_t>(i)];
  }
  w.dt_bias = b.vector(p + "ssm_dt.bias", Hv);
  w.a = b.vector(p + "ssm_a", Hv);
  w.norm = b.vector(p + "ssm_norm.weight", s.ssm_d_state);
}

void Qwen35Model::bind_attention(const Binder& b, const std::string& p, GatedAttentionWeights& w) const {
  const ModelSpec& s = spec_;
  const int64_t E = s.n_embd, D = s.head_dim_k;
  w.wq = b.matrix(p + "attn_q.weight", E, 2 * s.n_head * D);
  w.wk = b.matrix(p + "attn_k.weight", E, s.n_head_kv * D);
  w.wv = b.matrix(p + "attn_v.weight", E, s.n_head_kv * D);
  w.wo = b.matrix(p + "attn_output.weight", s.n_head * D, E);
  w.q_norm = b.vector(p + "attn_q_norm.weight", D);
  w.k_norm = b.vector(p + "attn_k_norm.weight", D);
}

// Gated full attention: per head q and gate from attn_q, q/k RMSNorm, partial
// NeoX RoPE, attention over the paged cache, output * sigmoid(gate).
void Qwen35Model::attention_layer(int64_t l, const Batch& batch, KvCache& cache, const float* h, float* out) {
  const ModelSpec& s = spec_;
  const GatedAttentionWeights& w = layers_[static_cast<size_t>(l)].att;
  const int64_t T = static_cast<int64_t>(batch.size()), D = s.head_dim_k, H = s.n_head, Hk = s.n_head_kv;
  const int64_t kv_layer = s.kv_layer_index(l);
  const int n_pairs = static_cast<int>(s.n_rot / 2);
  std::vector<float> qg(static_cast<size_t>(T * 2 * H * D)), q(static_cast<size_t>(T * H * D)),
      k(static_cast<size_t>(T * Hk * D)), v(k.size()), att(q.size());
  {
    const WeightMatrix* m[3] = {&w.wq, &w.wk, &w.wv};
    float* y[3] = {qg.data(), k.data(), v.data()};
    kernels::matmul_multi(m, y, 3, h, T, pool_);
  }
  for (int64_t t = 0; t < T; ++t) {
    const float* c = &cos_[static_cast<size_t>(t * n_pairs)];
    const float* sn = &sin_[static_cast<size_t>(t * n_pairs)];
    for (int64_t hh = 0; hh < H; ++hh) {
      float* qh = &q[static_cast<size_t>((t * H + hh) * D)];
      kernels::rms_norm(&qg[static_cast<size_t>((t * H + hh) * 2 * D)], w.q_norm.data(), s.rms_eps, D, qh);
      kernels::rope(qh, c, sn, n_pairs, true);
    }
    for (int64_t hh = 0; hh < Hk; ++hh) {
      float* kh = &k[static_cast<size_t>((t * Hk + hh) * D)];
      kernels::rms_norm(kh, w.k_norm.data(), s.rms_eps, D, kh);
      kernels::rope(kh, c, sn, n_pairs, true);
    }
    const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
    cache.write(kv_layer, bt.seq, bt.pos, &k[static_cast<size_t>(t * Hk * D)], &v[static_cast<size_t>(t * Hk * D)]);
  }
  AttentionShape a{H, Hk, D, D, H * D, D, D, 1.0f / std::sqrt(static_cast<float>(D))};
  paged_attention(a, batch, cache, kv_layer, q.data(), att.data(), pool_);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hh = 0; hh < H; ++hh) {
      const float* gate = &qg[static_cast<size_t>((t * H + hh) * 2 * D + D)];
      float* o = &att[static_cast<size_t>((t * H + hh) * D)];
      for (int64_t i = 0; i < D; ++i) o[i] *= sigmoid(gate[i]);
    }
  kernels::matmul(w.wo, att.data(), T, out, pool_);
}

// 1 / sqrt(sum x^2 + 1e-6), the sum in double in ascending order: the same
// on every ISA (kernels::dot's order is the ISA's own).
float inverse_l2(const float* x, int64_t n) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(1.0 / std::sqrt(ss + 1e-6));
}

// Each sequence of a batch in one DeltaNet layer: its tokens (batch rows, in
// position order), this layer's part of its state (conv inputs, then the
// value heads' matrices) and where a snapshot of it goes (KvCache).
struct LayerStates {
  std::vector<int> seqs;                   // in order of first appearance
  std::vector<std::vector<int64_t>> rows;  // by sequence id
  std::vector<float*> state, snap;         // by sequence id
  std::vector<int> snap_after;             // copy into snap after the token at this position (-1: none)
};

LayerStates bind_states(const ModelSpec& s, int64_t l, const Batch& batch, KvCache& cache) {
  LayerStates st;
  const size_t n = static_cast<size_t>(cache.n_seq());
  st.rows.resize(n);
  st.state.assign(n, nullptr);
  st.snap.assign(n, nullptr);
  st.snap_after.assign(n, -1);
  for (size_t t = 0; t < batch.size(); ++t) {
    const int seq = batch.tokens[t].seq;
    if (st.rows[static_cast<size_t>(seq)].empty()) st.seqs.push_back(seq);
    st.rows[static_cast<size_t>(seq)].push_back(static_cast<int64_t>(t));
  }
  const int64_t rec_index = l - (l + 1) / s.full_attn_interval, layer_floats = s.ssm_layer_state_floats();
  for (int seq : st.seqs) {
    const size_t q = static_cast<size_t>(seq);
    if (float* target = cache.snapshot_target(seq)) {
      st.snap[q] = target + rec_index * layer_floats;
      st.snap_after[q] = cache.snapshot_boundary(seq) - 1;
    }
    st.state[q] = cache.recurrent_state(seq) + rec_index * layer_floats;
    if (batch.tokens[static_cast<size_t>(st.rows[q][0])].pos == 0)
      std::fill(st.state[q], st.state[q] + layer_floats, 0.0f);  // a new sequence
  }
  return st;
}

// Causal convolution over the q/k/v channels, the last K-1 inputs as state; SiLU.
void Qwen35Model::convolve(const DeltaNetWeights& w, const Batch& batch, const LayerStates& st, const float* qkv,
                           float* conv_out) const {
  const int64_t C = spec_.ssm_conv_channels(), K = spec_.ssm_d_conv;
  const kernels::DeltaNetKernels& dk = kernels::active_deltanet_kernels();
  for (int seq : st.seqs) {
    float* hist = st.state[static_cast<size_t>(seq)];  // [K-1][C], oldest first
    for (int64_t t : st.rows[static_cast<size_t>(seq)]) {
      float* y = conv_out + t * C;
      dk.conv_step(w.conv.data(), hist, qkv + t * C, C, K, y);
      for (int64_t c = 0; c < C; ++c) y[c] = silu(y[c]);
      if (batch.tokens[static_cast<size_t>(t)].pos == st.snap_after[static_cast<size_t>(seq)])
        std::copy_n(hist, (K - 1) * C, st.snap[static_cast<size_t>(seq)]);
    }
  }
}

// L2-normalised q (scaled by 1/sqrt(dk)) and k per key head; log decay and beta per value head.
void Qwen35Model::prepare_gates(const DeltaNetWeights& w, int64_t T, float* conv_out, float* alpha, float* beta) const {
  const ModelSpec& s = spec_;
  const int64_t C = s.ssm_conv_channels(), Hk = s.ssm_n_group, Hv = s.ssm_dt_rank, D = s.ssm_d_state;
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (int64_t t = 0; t < T; ++t) {
    float* row = conv_out + t * C;
    for (int64_t hh = 0; hh < 2 * Hk; ++hh) {
      float* x = row + hh * D;
      const float inv = inverse_l2(x, D);
      const float scale = hh < Hk ? inv * q_scale : inv;
      for (int64_t i = 0; i < D; ++i) x[i] *= scale;
    }
    for (int64_t hh = 0; hh < Hv; ++hh) {
      const int64_t i = t * Hv + hh;
      alpha[i] = w.a[static_cast<size_t>(hh)] * softplus(alpha[i] + w.dt_bias[static_cast<size_t>(hh)]);
      beta[i] = sigmoid(beta[i]);
    }
  }
}

// The delta rule, one unit per (sequence, value head) on the thread pool, tokens in order.
void Qwen35Model::scan(const Batch& batch, const LayerStates& st, const float* conv_out, const float* alpha,
                       const float* beta, float* o) {
  const ModelSpec& s = spec_;
  const int64_t C = s.ssm_conv_channels(), Hk = s.ssm_n_group, Hv = s.ssm_dt_rank, D = s.ssm_d_state;
  const int64_t Vd = Hv * D, Kd = Hk * D, conv_floats = (s.ssm_d_conv - 1) * C;
  const kernels::DeltaNetKernels& dk = kernels::active_deltanet_kernels();
  const int64_t units = static_cast<int64_t>(st.seqs.size()) * Hv;
  pool_.parallel_for(units, [&](int64_t u0, int64_t u1, int) {
    std::vector<float> scratch(static_cast<size_t>(D));
    for (int64_t u = u0; u < u1; ++u) {
      const size_t seq = static_cast<size_t>(st.seqs[static_cast<size_t>(u / Hv)]);
      const int64_t hv = u % Hv, hk = hv % Hk;
      float* S = st.state[seq] + conv_floats + hv * D * D;
      for (int64_t t : st.rows[seq]) {
        const float* row = conv_out + t * C;
        dk.delta_step(S, row + hk * D, row + Kd + hk * D, row + 2 * Kd + hv * D, std::exp(alpha[t * Hv + hv]),
                      beta[t * Hv + hv], D, D, scratch.data(), o + t * Vd + hv * D);
        if (batch.tokens[static_cast<size_t>(t)].pos == st.snap_after[seq])
          std::copy_n(S, D * D, st.snap[seq] + conv_floats + hv * D * D);
      }
    }
  });
}

void Qwen35Model::deltanet_layer(int64_t l, const Batch& batch, KvCache& cache, const float* h, float* out) {
  const ModelSpec& s = spec_;
  const DeltaNetWeights& w = layers_[static_cast<size_t>(l)].dn;
  const int64_t T = static_cast<int64_t>(batch.size()), C = s.ssm_conv_channels();
  const int64_t Hv = s.ssm_dt_rank, D = s.ssm_d_state, Vd = Hv * D;
  std::vector<float> qkv(static_cast<size_t>(T * C)), z(static_cast<size_t>(T * Vd)), beta(static_cast<size_t>(T * Hv)),
      alpha(beta.size()), conv_out(qkv.size()), o(static_cast<size_t>(T * Vd));
  {
    const WeightMatrix* m[4] = {&w.qkv, &w.gate, &w.beta, &w.alpha};
    float* y[4] = {qkv.data(), z.data(), beta.data(), alpha.data()};
    kernels::matmul_multi(m, y, 4, h, T, pool_);
  }
  const LayerStates st = bind_states(s, l, batch, cache);
  convolve(w, batch, st, qkv.data(), conv_out.data());
  prepare_gates(w, T, conv_out.data(), alpha.data(), beta.data());
  scan(batch, st, conv_out.data(), alpha.data(), beta.data(), o.data());
  // Output: RMSNorm per value head, times SiLU(z); then the projection.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hv = 0; hv < Hv; ++hv) {
      float* oh = &o[static_cast<size_t>(t * Vd + hv * D)];
      const float* zh = &z[static_cast<size_t>(t * Vd + hv * D)];
      kernels::rms_norm(oh, w.norm.data(), s.rms_eps, D, oh);
      for (int64_t i = 0; i < D; ++i) oh[i] *= silu(zh[i]);
    }
  kernels::matmul(w.out, o.data(), T, out, pool_);
}

void Qwen35Model::feed_forward(const HybridLayer& L, float* x, int64_t T) {
  const ModelSpec& s = spec_;
  const int64_t E = s.n_embd;
  std::vector<float> h(static_cast<size_t>(T * E)), y(h.size());
  for (int64_t t = 0; t < T; ++t) kernels::rms_norm(x + t * E, L.post_norm.data(), s.rms_eps, E, &h[static_cast<size_t>(t * E)]);
  if (s.n_expert == 0) {
    swiglu_ffn(L.ffn, h.data(), T, y.data(), pool_);
  } else {
    // Routed experts (moe_ffn without its ungated shared path), then the shared expert times sigmoid(gate . h).
    MoeWeights routed = L.moe;
    routed.shared = FfnWeights{};
    moe_ffn(s, routed, h.data(), T, y.data(), pool_);
    std::vector<float> sh(h.size());
    swiglu_ffn(L.moe.shared, h.data(), T, sh.data(), pool_);
    for (int64_t t = 0; t < T; ++t) {
      const float g = sigmoid(kernels::dot(L.shexp_gate.data(), &h[static_cast<size_t>(t * E)], E));
      kernels::axpy(g, &sh[static_cast<size_t>(t * E)], &y[static_cast<size_t>(t * E)], E);
    }
  }
  for (int64_t i = 0; i < T * E; ++i) x[i] += y[static_cast<size_t>(i)];
}

Logits Qwen35Model::forward(const Batch& batch, KvCache& cache) {
  prepare_batch(spec_, batch, cache);
  if (!cache.has_recurrent_state())
    throw Error("internal: a " + std::string(spec_.arch_name()) + " model needs a cache made for its spec");
  const ModelSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(batch.size()), E = s.n_embd;
  std::vector<float> x(static_cast<size_t>(T * E)), h(x.size()), out(x.size());
  rope_->compute(batch, cos_, sin_);
  for (int64_t t = 0; t < T; ++t)
    kernels::get_row(head_.tok_embd, batch.tokens[static_cast<size_t>(t)].token, x.data() + t * E);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const HybridLayer& L = layers_[static_cast<size_t>(l)];
    for (int64_t t = 0; t < T; ++t) kernels::rms_norm(&x[static_cast<size_t>(t * E)], L.attn_norm.data(), s.rms_eps, E, &h[static_cast<size_t>(t * E)]);
    if (L.recurrent) deltanet_layer(l, batch, cache, h.data(), out.data());
    else attention_layer(l, batch, cache, h.data(), out.data());
    for (int64_t i = 0; i < T * E; ++i) x[static_cast<size_t>(i)] += out[static_cast<size_t>(i)];
    feed_forward(L, x.data(), T);
  }
  cache.commit(batch);
  return output_logits(s, batch, x.data(), head_.output_norm, head_.output, pool_);
}

}  // namespace

std::unique_ptr<Model> make_qwen35(const GgufFile& file, ThreadPool& pool) {
  return std::make_unique<Qwen35Model>(file, pool);
}

}  // namespace volga
