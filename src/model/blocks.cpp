#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/ops.h"
#include "model/arch.h"

namespace volga {

void prepare_batch(const ModelSpec& spec, const Batch& batch, KvCache& cache) {
  for (const BatchToken& t : batch.tokens)
    if (t.token < 0 || t.token >= spec.n_vocab)
      throw Error("token id " + std::to_string(t.token) + " is outside the vocabulary (size " +
                  std::to_string(spec.n_vocab) + ")");
  cache.prepare(batch);
}

std::vector<SeqRun> sequence_runs(const ModelSpec& spec, const Batch& batch, int64_t max_len) {
  std::vector<SeqRun> runs;
  std::vector<int32_t> seen;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& t = batch.tokens[i];
    if (t.token < 0 || t.token >= spec.n_vocab)
      throw Error("token id " + std::to_string(t.token) + " is outside the vocabulary (size " +
                  std::to_string(spec.n_vocab) + ")");
    const int64_t at = static_cast<int64_t>(i);
    if (runs.empty() || runs.back().seq != t.seq) {
      if (std::find(seen.begin(), seen.end(), t.seq) != seen.end())
        throw Error("sequence " + std::to_string(t.seq) + " is split in the batch");
      seen.push_back(t.seq);
      runs.push_back({at, at, t.seq});
    }
    SeqRun& r = runs.back();
    if (t.pos != r.end - r.begin)
      throw Error("sequence " + std::to_string(t.seq) + ": position " + std::to_string(t.pos) + " where " +
                  std::to_string(r.end - r.begin) + " was expected (embeddings take whole inputs from position 0)");
    if (++r.end - r.begin > max_len)
      throw Error("an input of more than " + std::to_string(max_len) + " tokens is longer than the model's context");
  }
  return runs;
}

namespace {

// Runs of consecutive positions of one sequence (a prompt's chunk, draft
// tokens), cut into pieces of up to `per_tile` tokens whose queries share
// each block of keys and values read (kernels/attend_tiled.h).
struct AttendRun {
  int64_t t0, n;
};
std::vector<AttendRun> attention_tiles(const Batch& batch, int64_t per_tile) {
  std::vector<AttendRun> tiles;
  const int64_t T = static_cast<int64_t>(batch.size());
  for (int64_t t = 0; t < T;) {
    int64_t n = 1;
    const BatchToken& first = batch.tokens[static_cast<size_t>(t)];
    while (t + n < T && n < per_tile && batch.tokens[static_cast<size_t>(t + n)].seq == first.seq &&
           batch.tokens[static_cast<size_t>(t + n)].pos == first.pos + n)
      ++n;
    tiles.push_back({t, n});
    t += n;
  }
  return tiles;
}

// One kernel call: query heads [g0, g1) of key/value head hk for a tile,
// over one chunk of positions (chunk >= 0, its partial at part) or all of
// them (chunk < 0). part_at: where its partial (or its tile's partials, for
// a merge) starts in the buffer of partials.
struct AttendUnit {
  int64_t tile, hk, g0, g1, chunk, part_at;
};

// Tiles of at most this many tokens (decode, draft tokens) are spread over
// the threads by chunks of positions too; longer ones have enough work in
// their tokens and run whole.
constexpr int64_t kSplitTokens = 4;

}  // namespace

void paged_attention(const AttentionShape& a, const Batch& batch, const KvCache& cache, int64_t layer,
                     const float* q, float* out, ThreadPool& pool, PhaseTimes* times) {
  PhaseScope timed(times, &PhaseTimes::attention);
  const int64_t group = a.n_head / a.n_head_kv;
  const std::vector<AttendRun> tiles = attention_tiles(batch, std::max<int64_t>(1, 64 / group));
  auto tile_call = [&](const AttendRun& tile, int64_t hk, int64_t g0, int64_t g1) {
    const BatchToken& bt = batch.tokens[static_cast<size_t>(tile.t0)];
    const int64_t h0 = hk * group + g0;  // first query head of this part
    kernels::AttendTile at;
    at.q = q + tile.t0 * a.q_stride + h0 * a.dk;
    at.q_stride = a.q_stride;
    at.out = out + tile.t0 * a.n_head * a.dv + h0 * a.dv;
    at.out_stride = a.n_head * a.dv;
    at.n_tokens = static_cast<int>(tile.n);
    at.group = static_cast<int>(g1 - g0);
    at.n_pos0 = bt.pos + 1;
    at.dk = a.dk;
    at.dv = a.dv;
    at.keys = cache.keys(layer, bt.seq, hk * a.k_head_stride);
    at.values = cache.values(layer, bt.seq, hk * a.v_head_stride);
    at.scale = a.scale;
    return at;
  };
  // Chunks of each tile's work: short tiles by chunks of positions.
  std::vector<int64_t> chunks(tiles.size(), 1);
  int64_t pieces = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    if (tiles[i].n <= kSplitTokens) chunks[i] = kernels::attend_chunks(tile_call(tiles[i], 0, 0, 1));
    pieces += chunks[i] * a.n_head_kv;
  }
  // A key/value head's group of query heads is split only when there are too
  // few pieces to keep every thread busy (MLA's single latent head at a
  // short depth); a head's arithmetic is the same in any part, and so is a
  // query's in any chunk split (the partials merge in chunk order).
  const int64_t parts = std::clamp<int64_t>((2 * pool.size() + pieces - 1) / pieces, 1, group);
  const int64_t per_part = (group + parts - 1) / parts;
  std::vector<AttendUnit> units, merges;
  int64_t part_floats = 0;
  for (size_t i = 0; i < tiles.size(); ++i)
    for (int64_t hk = 0; hk < a.n_head_kv; ++hk)
      for (int64_t g0 = 0; g0 < group; g0 += per_part) {
        const int64_t g1 = std::min(group, g0 + per_part), ti = static_cast<int64_t>(i);
        if (tiles[i].n > kSplitTokens) {
          units.push_back({ti, hk, g0, g1, -1, 0});
          continue;
        }
        const int64_t n = kernels::attend_part_floats(tiles[i].n * (g1 - g0), a.dv);
        merges.push_back({ti, hk, g0, g1, 0, part_floats});
        for (int64_t c = 0; c < chunks[i]; ++c) units.push_back({ti, hk, g0, g1, c, part_floats + c * n});
        part_floats += chunks[i] * n;
      }
  std::vector<float> parts_buf(static_cast<size_t>(part_floats));
  // Whole tiles first (the biggest pieces), then the chunks, from a shared
  // counter: later tiles of a prompt attend to more positions.
  pool.parallel_for_dynamic(static_cast<int64_t>(units.size()), [&](int64_t i0, int64_t i1, int) {
    std::vector<float> scratch;
    for (int64_t i = i0; i < i1; ++i) {
      const AttendUnit& u = units[static_cast<size_t>(i)];
      const kernels::AttendTile at = tile_call(tiles[static_cast<size_t>(u.tile)], u.hk, u.g0, u.g1);
      const int64_t n_q = at.n_tokens * at.group;
      if (u.chunk < 0) {
        scratch.resize(static_cast<size_t>(kernels::attend_scratch(n_q, a.dk, a.dv)));
        kernels::attend(at, scratch.data());
      } else {
        scratch.resize(static_cast<size_t>(kernels::attend_chunk_scratch(n_q, a.dk, a.dv)));
        kernels::attend_chunk(at, u.chunk, parts_buf.data() + u.part_at, scratch.data());
      }
    }
  }, std::max<int64_t>(1, static_cast<int64_t>(units.size()) / (8 * pool.size())));
  if (merges.empty()) return;
  pool.parallel_for(static_cast<int64_t>(merges.size()), [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const AttendUnit& u = merges[static_cast<size_t>(i)];
      kernels::attend_merge(tile_call(tiles[static_cast<size_t>(u.tile)], u.hk, u.g0, u.g1), parts_buf.data() + u.part_at);
    }
  });
}

FfnWeights bind_ffn(const Binder& b, const std::string& prefix, const std::string& suffix, int64_t n_embd,
                    int64_t n_ff) {
  FfnWeights w;
  w.n_ff = n_ff;
  w.gate = b.matrix(prefix + "ffn_gate" + suffix + ".weight", n_embd, n_ff);
  w.up = b.matrix(prefix + "ffn_up" + suffix + ".weight", n_embd, n_ff);
  w.down = b.matrix(prefix + "ffn_down" + suffix + ".weight", n_ff, n_embd);
  return w;
}

MoeWeights bind_moe(const Binder& b, const std::string& p, const ModelSpec& s) {
  const int64_t E = s.n_embd, F = s.n_ff_expert, X = s.n_expert;
  MoeWeights w;
  w.router = b.matrix(p + "ffn_gate_inp.weight", E, X);
  w.probs_bias = b.vector(p + "exp_probs_b.bias", X, false);
  const std::string fused = p + "ffn_gate_up_exps.weight";
  if (b.find(fused)) {
    // Newer converters stack each expert's gate and up rows in one tensor
    // [n_embd, 2 n_ff, n_expert]: rows [0, n_ff) gate, [n_ff, 2 n_ff) up.
    if (b.find(p + "ffn_gate_exps.weight") || b.find(p + "ffn_up_exps.weight"))
      throw Error("tensor '" + fused + "' and separate ffn_gate_exps/ffn_up_exps tensors: the file has both forms");
    w.gate = b.matrices(fused, E, 2 * F, X);
    w.up = w.gate;
    for (int64_t e = 0; e < X; ++e) {
      WeightMatrix& g = w.gate[static_cast<size_t>(e)];
      WeightMatrix& u = w.up[static_cast<size_t>(e)];
      g.rows = u.rows = F;
      u.data = g.data + F * g.row_stride;
    }
  } else {
    w.gate = b.matrices(p + "ffn_gate_exps.weight", E, F, X);
    w.up = b.matrices(p + "ffn_up_exps.weight", E, F, X);
  }
  w.down = b.matrices(p + "ffn_down_exps.weight", F, E, X);
  if (s.n_expert_shared > 0) w.shared = bind_ffn(b, p, "_shexp", E, F * s.n_expert_shared);
  return w;
}

void swiglu_ffn(const FfnWeights& w, const float* h, int64_t T, float* out, ThreadPool& pool) {
  // Scratch reused across layers and calls (engine thread only).
  thread_local std::vector<float> gate, up;
  gate.resize(static_cast<size_t>(T * w.n_ff));
  up.resize(gate.size());
  const WeightMatrix* m[2] = {&w.gate, &w.up};
  float* y[2] = {gate.data(), up.data()};
  kernels::matmul_multi(m, y, 2, h, T, pool);
  kernels::swiglu(gate.data(), up.data(), T * w.n_ff, gate.data());
  kernels::matmul(w.down, gate.data(), T, out, pool);
}

std::vector<std::pair<int64_t, float>> route_token(const ModelSpec& s, const float* logits,
                                                   const std::vector<float>& bias) {
  const int64_t X = s.n_expert, K = s.n_expert_used;
  std::vector<float> p(logits, logits + X);
  if (s.expert_gating == ExpertGating::Sigmoid) {
    for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
  } else {
    kernels::softmax(p.data(), X);
  }
  std::vector<float> choice = p;  // the bias steers the choice, not the weights
  if (!bias.empty())
    for (int64_t e = 0; e < X; ++e) choice[static_cast<size_t>(e)] += bias[static_cast<size_t>(e)];
  auto before = [&](int64_t a, int64_t b) {
    const float ca = choice[static_cast<size_t>(a)], cb = choice[static_cast<size_t>(b)];
    return ca > cb || (ca == cb && a < b);
  };
  if (s.n_expert_groups > 1) {
    // Keep the groups whose two best experts score highest (DeepSeek-V3).
    const int64_t G = s.n_expert_groups, per = X / G;
    std::vector<float> score(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) {
      std::vector<int64_t> idx(static_cast<size_t>(per));
      std::iota(idx.begin(), idx.end(), g * per);
      std::partial_sort(idx.begin(), idx.begin() + 2, idx.end(), before);
      score[static_cast<size_t>(g)] = choice[static_cast<size_t>(idx[0])] + choice[static_cast<size_t>(idx[1])];
    }
    std::vector<int64_t> groups(static_cast<size_t>(G));
    std::iota(groups.begin(), groups.end(), 0);
    std::partial_sort(groups.begin(), groups.begin() + s.n_group_used, groups.end(), [&](int64_t a, int64_t b) {
      return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)] ||
             (score[static_cast<size_t>(a)] == score[static_cast<size_t>(b)] && a < b);
    });
    std::vector<bool> keep(static_cast<size_t>(G), false);
    for (int64_t j = 0; j < s.n_group_used; ++j) keep[static_cast<size_t>(groups[static_cast<size_t>(j)])] = true;
    for (int64_t e = 0; e < X; ++e)
      if (!keep[static_cast<size_t>(e / per)]) choice[static_cast<size_t>(e)] = -INFINITY;
  }
  std::vector<int64_t> order(static_cast<size_t>(X));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + K, order.end(), before);
  std::vector<std::pair<int64_t, float>> out;
  float sum = 0;
  for (int64_t j = 0; j < K; ++j) {
    const int64_t e = order[static_cast<size_t>(j)];
    out.push_back({e, p[static_cast<size_t>(e)]});
    sum += p[static_cast<size_t>(e)];
  }
  const bool norm = s.traits().renorm_topk || s.expert_weights_norm;
  const float scale = (s.expert_weights_scale != 0.0f) ? s.expert_weights_scale : 1.0f;
  for (auto& [e, wgt] : out) {
    if (norm) wgt /= std::max(sum, 6.103515625e-5f);  // llama.cpp clamps the sum at F16's smallest normal
    wgt *= scale;
  }
  return out;
}

namespace {

// The routed tokens of the experts chosen in a batch, and their scratch:
// expert k (in ascending expert order) takes tokens list[k] with inputs
// at x[k] (a row of h itself for a single token, else rows copied together).
struct ExpertRuns {
  std::vector<int64_t> expert;
  std::vector<const std::vector<std::pair<int64_t, float>>*> list;
  std::vector<const float*> x;
  std::vector<float*> gate, up, y;
};

ExpertRuns expert_runs(const std::vector<std::vector<std::pair<int64_t, float>>>& routed, const float* h, int64_t E,
                       int64_t F, std::vector<float>& xs, std::vector<float>& gu, std::vector<float>& ys) {
  ExpertRuns r;
  int64_t copied = 0, tokens = 0;
  for (const auto& list : routed) {
    const auto n = static_cast<int64_t>(list.size());
    tokens += n;
    if (n > 1) copied += n;
  }
  xs.resize(static_cast<size_t>(copied * E));
  gu.resize(static_cast<size_t>(2 * tokens * F));
  ys.resize(static_cast<size_t>(tokens * E));
  int64_t at_x = 0, at_t = 0;
  for (size_t e = 0; e < routed.size(); ++e) {
    const auto& list = routed[e];
    const auto n = static_cast<int64_t>(list.size());
    if (n == 0) continue;
    r.expert.push_back(static_cast<int64_t>(e));
    r.list.push_back(&list);
    if (n == 1) {
      r.x.push_back(h + list[0].first * E);
    } else {
      float* dst = xs.data() + at_x * E;
      for (int64_t j = 0; j < n; ++j) std::copy_n(h + list[static_cast<size_t>(j)].first * E, E, dst + j * E);
      r.x.push_back(dst);
      at_x += n;
    }
    r.gate.push_back(gu.data() + 2 * at_t * F);
    r.up.push_back(gu.data() + (2 * at_t + n) * F);
    r.y.push_back(ys.data() + at_t * E);
    at_t += n;
  }
  return r;
}

}  // namespace

void moe_ffn(const ModelSpec& s, const MoeWeights& w, const float* h, int64_t T, float* out, ThreadPool& pool,
             PhaseTimes* times) {
  const int64_t E = s.n_embd, X = s.n_expert, F = s.n_ff_expert;
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(X));
  {
    PhaseScope timed(times, &PhaseTimes::routing);
    std::vector<float> logits(static_cast<size_t>(T * X));
    kernels::matmul(w.router, h, T, logits.data(), pool);
    for (int64_t t = 0; t < T; ++t)
      for (const auto& [e, wgt] : route_token(s, &logits[static_cast<size_t>(t * X)], w.probs_bias))
        routed[static_cast<size_t>(e)].push_back({t, wgt});
  }
  PhaseScope timed(times, &PhaseTimes::experts);
  // Scratch reused across layers and calls (engine thread only).
  thread_local std::vector<float> xs, gu, ys, sh_gate, sh_up;
  const ExpertRuns r = expert_runs(routed, h, E, F, xs, gu, ys);
  const bool shared = w.shared.n_ff > 0;
  // Every chosen expert's gate and up products, and the shared expert's, in
  // one pass of the pool; then every down product in another. The same
  // products as one matmul each, so the same bits.
  std::vector<kernels::MatmulJob> jobs;
  if (shared) {
    sh_gate.resize(static_cast<size_t>(T * w.shared.n_ff));
    sh_up.resize(sh_gate.size());
    jobs.push_back({&w.shared.gate, h, T, sh_gate.data()});
    jobs.push_back({&w.shared.up, h, T, sh_up.data()});
  }
  for (size_t k = 0; k < r.expert.size(); ++k) {
    const auto e = static_cast<size_t>(r.expert[k]);
    const auto n = static_cast<int64_t>(r.list[k]->size());
    jobs.push_back({&w.gate[e], r.x[k], n, r.gate[k]});
    jobs.push_back({&w.up[e], r.x[k], n, r.up[k]});
  }
  kernels::matmul_batch(jobs.data(), static_cast<int>(jobs.size()), pool);
  jobs.clear();
  if (shared) {
    kernels::swiglu(sh_gate.data(), sh_up.data(), T * w.shared.n_ff, sh_gate.data());
    jobs.push_back({&w.shared.down, sh_gate.data(), T, out});
  } else {
    std::fill(out, out + T * E, 0.0f);
  }
  for (size_t k = 0; k < r.expert.size(); ++k) {
    const auto e = static_cast<size_t>(r.expert[k]);
    const auto n = static_cast<int64_t>(r.list[k]->size());
    kernels::swiglu(r.gate[k], r.up[k], n * F, r.gate[k]);
    jobs.push_back({&w.down[e], r.gate[k], n, r.y[k]});
  }
  kernels::matmul_batch(jobs.data(), static_cast<int>(jobs.size()), pool);
  // Weighted sums in ascending expert order, after the shared expert's output.
  for (size_t k = 0; k < r.expert.size(); ++k) {
    const auto& list = *r.list[k];
    for (size_t j = 0; j < list.size(); ++j)
      kernels::axpy(list[j].second, r.y[k] + static_cast<int64_t>(j) * E, out + list[j].first * E, E);
  }
}

void residual_ffn(const ModelSpec& s, int64_t layer, const std::vector<float>& norm, const FfnWeights& ffn,
                  const MoeWeights& moe, float* x, int64_t T, float* h, float* out, ThreadPool& pool,
                  PhaseTimes* times) {
  const int64_t E = s.n_embd;
  for (int64_t t = 0; t < T; ++t) kernels::rms_norm(x + t * E, norm.data(), s.rms_eps, E, h + t * E);
  if (s.is_moe_layer(layer)) moe_ffn(s, moe, h, T, out, pool, times);
  else swiglu_ffn(ffn, h, T, out, pool);
  for (int64_t i = 0; i < T * E; ++i) x[i] += out[i];
}

HeadWeights bind_head(const Binder& b, const ModelSpec& s) {
  HeadWeights w;
  w.tok_embd = b.matrix("token_embd.weight", s.n_embd, s.n_vocab);
  w.output_norm = b.vector("output_norm.weight", s.n_embd);
  w.output = b.find("output.weight") ? b.matrix("output.weight", s.n_embd, s.n_vocab) : w.tok_embd;
  return w;
}

void embed_tokens(const ModelSpec& s, const HeadWeights& head, const Batch& batch, std::vector<float>& x) {
  const int64_t E = s.n_embd;
  x.assign(batch.size() * static_cast<size_t>(E), 0.0f);
  for (size_t t = 0; t < batch.size(); ++t)
    kernels::get_row(head.tok_embd, batch.tokens[t].token, x.data() + static_cast<int64_t>(t) * E);
}

Logits output_logits(const ModelSpec& s, const Batch& batch, const float* x, const std::vector<float>& norm,
                     const WeightMatrix& output, ThreadPool& pool) {
  const int64_t E = s.n_embd;
  Logits out;
  out.n_vocab = s.n_vocab;
  std::vector<float> sel;
  for (size_t t = 0; t < batch.size(); ++t) {
    if (!batch.tokens[t].want_logits) continue;
    out.batch_index.push_back(static_cast<int32_t>(t));
    sel.resize(sel.size() + static_cast<size_t>(E));
    kernels::rms_norm(x + static_cast<int64_t>(t) * E, norm.data(), s.rms_eps, E, &sel[sel.size() - static_cast<size_t>(E)]);
  }
  out.data.resize(static_cast<size_t>(out.rows() * s.n_vocab));
  if (out.rows() > 0) kernels::matmul(output, sel.data(), out.rows(), out.data.data(), pool);
  return out;
}

}  // namespace volga
