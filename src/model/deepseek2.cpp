// deepseek2 (DeepSeek-V2/V3, GigaChat 3): multi-head latent attention and
// DeepSeek mixture of experts.
//
// Attention runs in absorbed form: per token the KV cache holds only the
// normalised latent c (kv_lora_rank) and the rotated key part k_pe (rope dims).
// For head h, q_nope . (W_UK_h c) = (W_UK_h^T q_nope) . c, so the query's
// no-position part is mapped into the latent space once (attn_k_b) and the
// scores are one dot product with [c, k_pe]; the output is W_UV_h applied to
// the attention-weighted latent (attn_v_b). RoPE uses adjacent pairs on the
// rope dims, with YaRN and its attention-scale factor when the file asks.
// Older files carry attn_kv_b instead of attn_k_b/attn_v_b; its key half is
// transposed to F32 at load, its value half is used in place.
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

int64_t positive(const GgufFile& f, const std::string& key, int64_t v) { return spec_positive(f, key, v); }
[[noreturn]] void bad(const GgufFile& f, const std::string& what) { spec_error(f, what); }

// Multi-head latent attention sizes. Files written since llama.cpp's MLA
// support carry key_length_mla/value_length_mla and split attn_k_b/attn_v_b
// (key_length = kv_lora_rank + rope dims, one KV head); older ones carry the
// per-head sizes in key_length/value_length and one attn_kv_b.
void read_mla(const GgufFile& f, const std::string& p, ModelSpec& s) {
  s.n_lora_q = f.get_int_opt(p + "attention.q_lora_rank").value_or(0);
  if (s.n_lora_q < 0 || s.n_lora_q > (int64_t{1} << 20)) bad(f, "attention.q_lora_rank is out of range");
  s.n_lora_kv = positive(f, p + "attention.kv_lora_rank", f.get_int(p + "attention.kv_lora_rank"));
  const auto k_mla = f.get_int_opt(p + "attention.key_length_mla");
  const auto v_mla = f.get_int_opt(p + "attention.value_length_mla");
  s.mla_split_kv_b = k_mla && v_mla && *k_mla > 0 && *v_mla > 0;
  if (s.mla_split_kv_b) {
    s.head_dim_k_mla = positive(f, p + "attention.key_length_mla", *k_mla);
    s.head_dim_v_mla = positive(f, p + "attention.value_length_mla", *v_mla);
    if (s.head_dim_k != s.n_lora_kv + s.n_rot || s.head_dim_v != s.n_lora_kv)
      bad(f, "attention.key_length/value_length (" + std::to_string(s.head_dim_k) + "/" +
                 std::to_string(s.head_dim_v) + ") do not match kv_lora_rank " + std::to_string(s.n_lora_kv) +
                 " + rope dims " + std::to_string(s.n_rot));
  } else {
    s.head_dim_k_mla = s.head_dim_k;
    s.head_dim_v_mla = s.head_dim_v;
  }
  if (s.head_dim_k_mla <= s.n_rot) bad(f, "the MLA key size must exceed the rope dimension count");
}

// DeepSeek's mixture of experts: shared experts, leading dense layers, gating,
// group-limited routing, weight normalisation and scaling.
void read_deepseek_experts(const GgufFile& f, const std::string& p, ModelSpec& s) {
  s.n_expert_shared = f.get_int_opt(p + "expert_shared_count").value_or(0);
  s.n_layer_dense_lead = f.get_int_opt(p + "leading_dense_block_count").value_or(0);
  if (s.n_expert_shared < 0 || s.n_expert_shared > 64) bad(f, "expert_shared_count is out of range");
  if (s.n_layer_dense_lead < 0 || s.n_layer_dense_lead > s.n_layer)
    bad(f, "leading_dense_block_count is out of range");
  const int64_t gating = f.get_int_opt(p + "expert_gating_func").value_or(0);
  if (gating == 0 || gating == 1) s.expert_gating = ExpertGating::Softmax;  // 0: older files, softmax
  else if (gating == 2) s.expert_gating = ExpertGating::Sigmoid;
  else bad(f, "expert_gating_func " + std::to_string(gating) + " is not supported (1 softmax, 2 sigmoid)");
  s.expert_weights_norm = f.get_bool_opt(p + "expert_weights_norm").value_or(false);
  s.expert_weights_scale = static_cast<float>(f.get_float_opt(p + "expert_weights_scale").value_or(0.0));
  if (!std::isfinite(s.expert_weights_scale)) bad(f, "expert_weights_scale is not finite");
  s.n_expert_groups = f.get_int_opt(p + "expert_group_count").value_or(0);
  s.n_group_used = f.get_int_opt(p + "expert_group_used_count").value_or(0);
  if (s.n_expert_groups > 1) {
    if (s.n_expert % s.n_expert_groups != 0 || s.n_group_used <= 0 || s.n_group_used > s.n_expert_groups ||
        s.n_expert_used > s.n_group_used * (s.n_expert / s.n_expert_groups) || s.n_expert / s.n_expert_groups < 2)
      bad(f, "expert_group_count " + std::to_string(s.n_expert_groups) + " / expert_group_used_count " +
                 std::to_string(s.n_group_used) + " do not fit " + std::to_string(s.n_expert) + " experts, " +
                 std::to_string(s.n_expert_used) + " used");
  }
  if (s.n_layer_dense_lead > 0 && s.n_ff <= 0) bad(f, "feed_forward_length is needed by the leading dense layers");
}

}  // namespace

void read_deepseek2_hparams(const GgufFile& f, const std::string& p, ModelSpec& s) {
  read_mla(f, p, s);
  read_deepseek_experts(f, p, s);
}

namespace {

struct MlaLayer {
  std::vector<float> attn_norm, ffn_norm, q_a_norm, kv_a_norm;
  WeightMatrix wq, wq_a, wq_b, wkv_a, wo;
  std::vector<WeightMatrix> k_b, v_b;  // per head: [kv_lora_rank x nope], [v dims x kv_lora_rank]
  std::vector<float> k_b_owned;        // legacy attn_kv_b: the key half, transposed
  FfnWeights ffn;
  MoeWeights moe;
};

class MlaDecoder final : public Model {
 public:
  MlaDecoder(const GgufFile& f, ThreadPool& pool, const StageRange& range) : pool_(pool) {
    spec_ = read_model_spec(f);
    const ModelSpec& s = spec_;
    Binder b(f);
    const int64_t E = s.n_embd, H = s.n_head, C = s.n_lora_kv, R = s.n_rot, Dq = s.head_dim_k_mla,
                  nope = Dq - R, Vd = s.head_dim_v_mla;
    first_ = range.first;
    end_ = range.end < 0 ? s.n_layer : range.end;
    has_head_ = range.head;
    if (has_head_) head_ = bind_head(b, s);
    layers_.reserve(static_cast<size_t>(end_ - first_));
    for (int64_t i = first_; i < end_; ++i) {  // a stage binds (and reads) only its own layers
      const std::string p = "blk." + std::to_string(i) + ".";
      MlaLayer& L = layers_.emplace_back();
      L.attn_norm = b.vector(p + "attn_norm.weight", E);
      if (s.n_lora_q > 0) {
        L.wq_a = b.matrix(p + "attn_q_a.weight", E, s.n_lora_q);
        L.q_a_norm = b.vector(p + "attn_q_a_norm.weight", s.n_lora_q);
        L.wq_b = b.matrix(p + "attn_q_b.weight", s.n_lora_q, H * Dq);
      } else {
        L.wq = b.matrix(p + "attn_q.weight", E, H * Dq);
      }
      L.wkv_a = b.matrix(p + "attn_kv_a_mqa.weight", E, C + R);
      L.kv_a_norm = b.vector(p + "attn_kv_a_norm.weight", C);
      if (s.mla_split_kv_b) {
        L.k_b = b.matrices(p + "attn_k_b.weight", nope, C, H);
        L.v_b = b.matrices(p + "attn_v_b.weight", C, Vd, H);
      } else {
        bind_legacy_kv_b(b, p + "attn_kv_b.weight", L);
      }
      L.wo = b.matrix(p + "attn_output.weight", H * Vd, E);
      L.ffn_norm = b.vector(p + "ffn_norm.weight", E);
      if (s.is_moe_layer(i)) L.moe = bind_moe(b, p, s);
      else L.ffn = bind_ffn(b, p, "", E, s.n_ff);
    }
    rope_.emplace(s, std::vector<float>{});
  }

  const ModelSpec& spec() const override { return spec_; }
  Logits forward(const Batch& batch, KvCache& cache) override {
    prepare_batch(spec_, batch, cache);
    std::vector<float> x;
    embed(batch, x);
    run_layers(batch, cache, x.data());
    cache.commit(batch);
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

 private:
  void bind_legacy_kv_b(const Binder& b, const std::string& name, MlaLayer& L) const;

  ModelSpec spec_;
  ThreadPool& pool_;
  HeadWeights head_;
  std::optional<RopeTable> rope_;
  std::vector<MlaLayer> layers_;  // layers [first_, end_)
  int64_t first_ = 0, end_ = 0;
  bool has_head_ = true;
};

// attn_kv_b is [kv_lora_rank -> n_head * (nope + v)]: per head, nope key rows
// then v value rows. The value rows are used in place; the key rows are
// transposed to [kv_lora_rank x nope] so the query can be absorbed.
void MlaDecoder::bind_legacy_kv_b(const Binder& b, const std::string& name, MlaLayer& L) const {
  const ModelSpec& s = spec_;
  const int64_t H = s.n_head, C = s.n_lora_kv, nope = s.head_dim_k_mla - s.n_rot, Vd = s.head_dim_v_mla;
  const WeightMatrix kv = b.matrix(name, C, H * (nope + Vd));
  L.k_b_owned.resize(static_cast<size_t>(H * C * nope));
  std::vector<float> row(static_cast<size_t>(C));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t i = 0; i < nope; ++i) {
      kernels::get_row(kv, h * (nope + Vd) + i, row.data());
      for (int64_t c = 0; c < C; ++c) L.k_b_owned[static_cast<size_t>((h * C + c) * nope + i)] = row[static_cast<size_t>(c)];
    }
    WeightMatrix k;
    k.type = DType::F32;
    k.rows = C;
    k.cols = nope;
    k.row_stride = nope * static_cast<int64_t>(sizeof(float));
    k.data = reinterpret_cast<const uint8_t*>(L.k_b_owned.data() + h * C * nope);
    L.k_b.push_back(k);
    WeightMatrix v = kv;
    v.rows = Vd;
    v.data = kv.data + (h * (nope + Vd) + nope) * kv.row_stride;
    L.v_b.push_back(v);
  }
}

// The stage's layers over the batch's hidden states x, in place.
void MlaDecoder::run_layers(const Batch& batch, KvCache& cache, float* x) {
  const ModelSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(batch.size()), E = s.n_embd, H = s.n_head, C = s.n_lora_kv,
                R = s.n_rot, Dq = s.head_dim_k_mla, nope = Dq - R, Vd = s.head_dim_v_mla, W = C + R;
  const int n_pairs = static_cast<int>(R / 2);
  const float scale = s.attn_scale;

  std::vector<float> h(static_cast<size_t>(T * E)), ffn_out(h.size());
  std::vector<float> q(static_cast<size_t>(T * H * Dq)), qa(static_cast<size_t>(T * s.n_lora_q)),
      kv(static_cast<size_t>(T * W)), q_nope(static_cast<size_t>(H * T * nope)),
      q_abs(static_cast<size_t>(H * T * C)), q_full(static_cast<size_t>(T * H * W)),
      o_lat(static_cast<size_t>(H * T * C)), o_v(static_cast<size_t>(H * T * Vd)),
      att(static_cast<size_t>(T * H * Vd)), att_lat(static_cast<size_t>(T * H * C));
  std::vector<float> cosv, sinv;
  rope_->compute(batch, cosv, sinv);

  for (int64_t l = first_; l < end_; ++l) {
    const MlaLayer& L = layers_[static_cast<size_t>(l - first_)];
    for (int64_t t = 0; t < T; ++t) kernels::rms_norm(&x[t * E], L.attn_norm.data(), s.rms_eps, E, &h[t * E]);
    {  // the query's first product and the latent KV share their input
      const WeightMatrix* w[2] = {s.n_lora_q > 0 ? &L.wq_a : &L.wq, &L.wkv_a};
      float* y[2] = {s.n_lora_q > 0 ? qa.data() : q.data(), kv.data()};
      kernels::matmul_multi(w, y, 2, h.data(), T, pool_);
    }
    if (s.n_lora_q > 0) {
      for (int64_t t = 0; t < T; ++t)
        kernels::rms_norm(&qa[t * s.n_lora_q], L.q_a_norm.data(), s.rms_eps, s.n_lora_q, &qa[t * s.n_lora_q]);
      kernels::matmul(L.wq_b, qa.data(), T, q.data(), pool_);
    }
    for (int64_t t = 0; t < T; ++t) {
      const float* c = &cosv[static_cast<size_t>(t * n_pairs)];
      const float* sn = &sinv[static_cast<size_t>(t * n_pairs)];
      float* row = &kv[static_cast<size_t>(t * W)];
      kernels::rms_norm(row, L.kv_a_norm.data(), s.rms_eps, C, row);
      kernels::rope(row + C, c, sn, n_pairs, false);
      const BatchToken& bt = batch.tokens[static_cast<size_t>(t)];
      cache.write(l, bt.seq, bt.pos, row, nullptr);
      for (int64_t hh = 0; hh < H; ++hh) {
        float* qh = &q[static_cast<size_t>((t * H + hh) * Dq)];
        kernels::rope(qh + nope, c, sn, n_pairs, false);
        std::copy_n(qh, nope, &q_nope[static_cast<size_t>((hh * T + t) * nope)]);
      }
    }
    // Absorb W_UK into the query: q_abs[h][t] = k_b[h] . q_nope[h][t].
    kernels::matmul_grouped(L.k_b.data(), H, q_nope.data(), T, q_abs.data(), pool_);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t hh = 0; hh < H; ++hh) {
        float* dst = &q_full[static_cast<size_t>((t * H + hh) * W)];
        std::copy_n(&q_abs[static_cast<size_t>((hh * T + t) * C)], C, dst);
        std::copy_n(&q[static_cast<size_t>((t * H + hh) * Dq + nope)], R, dst + C);
      }
    // Multi-query attention over the cached [c, k_pe]; values are the latents.
    {
      AttentionShape a{H, 1, W, C, H * W, 0, 0, scale};
      paged_attention(a, batch, cache, l, q_full.data(), att_lat.data(), pool_, phases_);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t hh = 0; hh < H; ++hh)
          std::copy_n(&att_lat[static_cast<size_t>((t * H + hh) * C)], C, &o_lat[static_cast<size_t>((hh * T + t) * C)]);
    }
    // Decompress with W_UV per head, then the output projection.
    kernels::matmul_grouped(L.v_b.data(), H, o_lat.data(), T, o_v.data(), pool_);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t hh = 0; hh < H; ++hh)
        std::copy_n(&o_v[static_cast<size_t>((hh * T + t) * Vd)], Vd, &att[static_cast<size_t>((t * H + hh) * Vd)]);
    kernels::matmul(L.wo, att.data(), T, h.data(), pool_);
    for (int64_t i = 0; i < T * E; ++i) x[i] += h[i];
    residual_ffn(s, l, L.ffn_norm, L.ffn, L.moe, x, T, h.data(), ffn_out.data(), pool_, phases_);
  }
}

}  // namespace

std::unique_ptr<Model> make_mla_decoder(const GgufFile& file, ThreadPool& pool) {
  return std::make_unique<MlaDecoder>(file, pool, StageRange{});
}

std::unique_ptr<Model> make_mla_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range) {
  return std::make_unique<MlaDecoder>(file, pool, range);
}

}  // namespace volga
