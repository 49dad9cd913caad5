// The thin front of the kernels: checks nothing in release builds (callers
// validate shapes at load time), splits work over the thread pool, and calls
// the active ISA's table.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/attend_tiled.h"
#include "kernels/dispatch.h"

namespace volga::kernels {

namespace {

// Per-token strides of the quantized activations of one scheme (Int8Acts).
struct ActsStrides {
  int64_t q, d, s, bsum;
};
ActsStrides acts_strides(int64_t cols, int block) {
  if (block == 256) return {cols, cols / 256, 0, cols / 16};
  return {cols, cols / 32, cols / 32, 0};
}

// Quantizes token rows of x with the scheme of `block` into the given
// buffers at the token's strides.
void quantize_token(const KernelTable& k, int block, const float* x, int64_t cols, int8_t* q, uint8_t* qu, float* d,
                    float* s, int16_t* bsum) {
  if (block == 256) k.quantize_acts_k(x, cols, q, qu, d, bsum);
  else k.quantize_acts(x, cols, q, qu, d, s);
}

// The calling (engine) thread's buffers for quantized activations.
struct ActsBuffers {
  std::vector<int8_t> q;
  std::vector<uint8_t> qu;
  std::vector<float> d, s;
  std::vector<int16_t> bsum;
  void reserve(size_t nq, size_t nd, size_t ns, size_t nb) {
    if (q.size() < nq) q.resize(nq), qu.resize(nq);
    if (d.size() < nd) d.resize(nd);
    if (s.size() < ns) s.resize(ns);
    if (bsum.size() < nb) bsum.resize(nb);
  }
};

// Quantizes the activations for the integer products of weights of `type`
// into buffers owned by the calling (engine) thread, in parallel over
// tokens when there are many.
Int8Acts quantize_activations(const KernelTable& k, DType type, const float* x, int64_t cols, int64_t n_tokens,
                              ThreadPool& pool) {
  thread_local ActsBuffers buf;
  const int block = int8_acts_block(type);
  const ActsStrides st = acts_strides(cols, block);
  const auto n = static_cast<size_t>(n_tokens);
  buf.reserve(n * static_cast<size_t>(st.q), n * static_cast<size_t>(st.d), n * static_cast<size_t>(st.s),
              n * static_cast<size_t>(st.bsum));
  // Plain pointers: the workers must not name this thread's thread_local buffers.
  int8_t* qp = buf.q.data();
  uint8_t* qup = buf.qu.data();
  float *dp = buf.d.data(), *sp = buf.s.data();
  int16_t* bp = buf.bsum.data();
  const Int8Acts out{cols, n_tokens, qp, qup, dp, block == 32 ? sp : nullptr, block, block == 256 ? bp : nullptr};
  auto run = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t)
      quantize_token(k, block, x + t * cols, cols, qp + t * st.q, qup + t * st.q, dp + t * st.d, sp + t * st.s,
                     bp + t * st.bsum);
  };
  if (n_tokens <= 2) run(0, n_tokens, 0);
  else pool.parallel_for(n_tokens, run, 1);
  return out;
}

// Units per range taken from the pool's shared counter: about four per
// thread, so a thread slowed down by something else is covered by the others,
// while each range stays long enough for the prefetchers to follow.
int64_t dynamic_chunk(int64_t units, const ThreadPool& pool) {
  return std::max<int64_t>(1, units / (4 * static_cast<int64_t>(pool.size())));
}

MatmulObserver g_observer = nullptr;
void* g_observer_context = nullptr;

}  // namespace

void set_matmul_observer(MatmulObserver observer, void* context) {
  g_observer = observer;
  g_observer_context = context;
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  if (g_observer) g_observer(w, x, n_tokens, g_observer_context);
  const KernelTable& k = active_kernels();
  if (int8_matmul_supported(w.type) && int8_matmul_enabled()) {
    const Int8Acts xq = quantize_activations(k, w.type, x, w.cols, n_tokens, pool);
    const int64_t tiles = (w.rows + 15) / 16;
    pool.parallel_for_dynamic(tiles, [&](int64_t b0, int64_t b1, int) {
      k.matmul_rows_int8(w, b0 * 16, std::min(w.rows, b1 * 16), xq, y, w.rows);
    }, dynamic_chunk(tiles, pool));
    return;
  }
  // Tiles of 16 rows: enough work per task to hide scheduling, small enough
  // that both cores stay busy on the narrowest matrices (a few hundred rows).
  const int64_t tiles = (w.rows + 15) / 16;
  pool.parallel_for_dynamic(tiles, [&](int64_t b0, int64_t b1, int) {
    k.matmul_rows(w, b0 * 16, std::min(w.rows, b1 * 16), x, n_tokens, y, w.rows);
  }, dynamic_chunk(tiles, pool));
}

void matmul_multi(const WeightMatrix* const* w, float* const* y, int n, const float* x, int64_t n_tokens,
                  ThreadPool& pool) {
  const KernelTable& k = active_kernels();
  const bool int8 = int8_matmul_enabled() && int8_matmul_supported(w[0]->type);
  bool same = true;  // one quantization serves all only if every matrix takes the same path
  for (int i = 1; i < n; ++i)
    same = same && w[i]->cols == w[0]->cols && (int8_matmul_enabled() && int8_matmul_supported(w[i]->type)) == int8 &&
           (!int8 || int8_acts_block(w[i]->type) == int8_acts_block(w[0]->type));
  if (!same || n == 1) {
    for (int i = 0; i < n; ++i) matmul(*w[i], x, n_tokens, y[i], pool);  // each observed there
    return;
  }
  if (g_observer)
    for (int i = 0; i < n; ++i) g_observer(*w[i], x, n_tokens, g_observer_context);
  constexpr int kMax = 8;
  if (n > kMax) throw std::invalid_argument("matmul_multi: too many matrices");
  int64_t first[kMax + 1] = {0};  // tile index where matrix i starts
  for (int i = 0; i < n; ++i) first[i + 1] = first[i] + (w[i]->rows + 15) / 16;
  const int64_t tiles = first[n];
  Int8Acts xq{};
  if (int8) xq = quantize_activations(k, w[0]->type, x, w[0]->cols, n_tokens, pool);
  pool.parallel_for_dynamic(tiles, [&](int64_t b0, int64_t b1, int) {
    for (int i = 0; i < n; ++i) {
      const int64_t lo = std::max(b0, first[i]), hi = std::min(b1, first[i + 1]);
      if (lo >= hi) continue;
      const WeightMatrix& m = *w[i];
      const int64_t r0 = (lo - first[i]) * 16, r1 = std::min(m.rows, (hi - first[i]) * 16);
      if (int8) k.matmul_rows_int8(m, r0, r1, xq, y[i], m.rows);
      else k.matmul_rows(m, r0, r1, x, n_tokens, y[i], m.rows);
    }
  }, dynamic_chunk(tiles, pool));
}

namespace {

// Where each job of a matmul_batch finds its quantized activations: jobs
// with the same input share a slot. Buffers are the calling thread's.
struct BatchActs {
  std::vector<Int8Acts> slot_acts;  // one per distinct int8 input
  std::vector<int> job_slot;        // per job: its slot, or -1 (float path)
};

BatchActs quantize_batch(const KernelTable& k, const MatmulJob* jobs, int n, ThreadPool& pool) {
  thread_local ActsBuffers buf;
  BatchActs b;
  b.job_slot.assign(static_cast<size_t>(n), -1);
  std::vector<int> slot_job, slot_block;  // first job and scheme of each slot
  // Where each slot starts in the q, d, s and bsum buffers.
  std::vector<size_t> q_at{0}, d_at{0}, s_at{0}, b_at{0};
  const bool enabled = int8_matmul_enabled();
  for (int i = 0; i < n; ++i) {
    const MatmulJob& j = jobs[i];
    if (!enabled || !int8_matmul_supported(j.w->type)) continue;
    const int block = int8_acts_block(j.w->type);
    int found = -1;
    for (size_t sl = 0; sl < slot_job.size() && found < 0; ++sl) {
      const MatmulJob& o = jobs[slot_job[sl]];
      if (o.x == j.x && o.n_tokens == j.n_tokens && o.w->cols == j.w->cols && slot_block[sl] == block)
        found = static_cast<int>(sl);
    }
    if (found < 0) {
      found = static_cast<int>(slot_job.size());
      slot_job.push_back(i);
      slot_block.push_back(block);
      const ActsStrides st = acts_strides(j.w->cols, block);
      const auto nt = static_cast<size_t>(j.n_tokens);
      q_at.push_back(q_at.back() + nt * static_cast<size_t>(st.q));
      d_at.push_back(d_at.back() + nt * static_cast<size_t>(st.d));
      s_at.push_back(s_at.back() + nt * static_cast<size_t>(st.s));
      b_at.push_back(b_at.back() + nt * static_cast<size_t>(st.bsum));
    }
    b.job_slot[static_cast<size_t>(i)] = found;
  }
  buf.reserve(q_at.back(), d_at.back(), s_at.back(), b_at.back());
  // Plain pointers: the workers must not name this thread's thread_local buffers.
  int8_t* qp = buf.q.data();
  uint8_t* qup = buf.qu.data();
  float *dp = buf.d.data(), *sp = buf.s.data();
  int16_t* bp = buf.bsum.data();
  // Units: (slot, token) pairs, numbered slot by slot.
  std::vector<int64_t> unit_at{0};
  for (size_t sl = 0; sl < slot_job.size(); ++sl) {
    const MatmulJob& j = jobs[slot_job[sl]];
    const int block = slot_block[sl];
    b.slot_acts.push_back({j.w->cols, j.n_tokens, qp + q_at[sl], qup + q_at[sl], dp + d_at[sl],
                           block == 32 ? sp + s_at[sl] : nullptr, block, block == 256 ? bp + b_at[sl] : nullptr});
    unit_at.push_back(unit_at.back() + j.n_tokens);
  }
  auto run = [&](int64_t u0, int64_t u1, int) {
    size_t sl = 0;
    for (int64_t u = u0; u < u1; ++u) {
      while (unit_at[sl + 1] <= u) ++sl;
      const MatmulJob& j = jobs[slot_job[sl]];
      const int64_t t = u - unit_at[sl], cols = j.w->cols;
      const ActsStrides st = acts_strides(cols, slot_block[sl]);
      quantize_token(k, slot_block[sl], j.x + t * cols, cols, qp + q_at[sl] + t * st.q, qup + q_at[sl] + t * st.q,
                     dp + d_at[sl] + t * st.d, sp + s_at[sl] + t * st.s, bp + b_at[sl] + t * st.bsum);
    }
  };
  // A few rows (decode: the experts' inputs) cost less than waking the pool.
  if (q_at.back() <= (size_t{1} << 15)) run(0, unit_at.back(), 0);
  else pool.parallel_for(unit_at.back(), run, 1);
  return b;
}

}  // namespace

void matmul_batch(const MatmulJob* jobs, int n, ThreadPool& pool) {
  if (n <= 0) return;
  if (g_observer)
    for (int i = 0; i < n; ++i) g_observer(*jobs[i].w, jobs[i].x, jobs[i].n_tokens, g_observer_context);
  const KernelTable& k = active_kernels();
  const BatchActs acts = quantize_batch(k, jobs, n, pool);
  std::vector<int64_t> first(static_cast<size_t>(n) + 1, 0);  // tile index where job i starts
  for (int i = 0; i < n; ++i)
    first[static_cast<size_t>(i) + 1] = first[static_cast<size_t>(i)] + (jobs[i].n_tokens > 0 ? (jobs[i].w->rows + 15) / 16 : 0);
  const int64_t tiles = first.back();
  pool.parallel_for_dynamic(tiles, [&](int64_t b0, int64_t b1, int) {
    auto it = std::upper_bound(first.begin(), first.end(), b0);
    for (size_t i = static_cast<size_t>(it - first.begin()) - 1; i < static_cast<size_t>(n) && first[i] < b1; ++i) {
      const int64_t lo = std::max(b0, first[i]), hi = std::min(b1, first[i + 1]);
      if (lo >= hi) continue;
      const MatmulJob& j = jobs[i];
      const int64_t r0 = (lo - first[i]) * 16, r1 = std::min(j.w->rows, (hi - first[i]) * 16);
      if (acts.job_slot[i] >= 0)
        k.matmul_rows_int8(*j.w, r0, r1, acts.slot_acts[static_cast<size_t>(acts.job_slot[i])], j.y, j.w->rows);
      else
        k.matmul_rows(*j.w, r0, r1, j.x, j.n_tokens, j.y, j.w->rows);
    }
  }, dynamic_chunk(tiles, pool));
}

void matmul_grouped(const WeightMatrix* w, int64_t n_groups, const float* x, int64_t n_tokens, float* y,
                    ThreadPool& pool) {
  const KernelTable& k = active_kernels();
  if (int8_matmul_supported(w[0].type) && int8_matmul_enabled()) {
    const int64_t rows = w[0].rows, cols = w[0].cols, tiles = (rows + 15) / 16;
    const Int8Acts xq = quantize_activations(k, w[0].type, x, cols, n_groups * n_tokens, pool);
    const ActsStrides st = acts_strides(cols, xq.block);
    pool.parallel_for_dynamic(n_groups * tiles, [&](int64_t b0, int64_t b1, int) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t g = b / tiles, r0 = (b % tiles) * 16, first = g * n_tokens;
        const Int8Acts xg{cols, n_tokens, xq.q + first * st.q, xq.qu + first * st.q, xq.d + first * st.d,
                          xq.s ? xq.s + first * st.s : nullptr, xq.block, xq.bsum ? xq.bsum + first * st.bsum : nullptr};
        k.matmul_rows_int8(w[g], r0, std::min(rows, r0 + 16), xg, y + g * n_tokens * rows, rows);
      }
    }, dynamic_chunk(n_groups * tiles, pool));
    return;
  }
  const int64_t rows = w[0].rows, cols = w[0].cols, tiles = (rows + 15) / 16;
  pool.parallel_for(n_groups * tiles, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / tiles, r0 = (b % tiles) * 16;
      k.matmul_rows(w[g], r0, std::min(rows, r0 + 16), x + g * n_tokens * cols, n_tokens, y + g * n_tokens * rows, rows);
    }
  }, 1);
}

const Int8Acts& quantize_int8_acts(const KernelTable& k, DType type, const float* x, int64_t cols, int64_t n_tokens,
                                   Int8ActsBuffer& buf) {
  const int block = int8_acts_block(type);
  const ActsStrides st = acts_strides(cols, block);
  const auto n = static_cast<size_t>(n_tokens);
  buf.q.assign(n * static_cast<size_t>(st.q), 0);
  buf.qu.assign(buf.q.size(), 0);
  buf.d.assign(n * static_cast<size_t>(st.d), 0);
  buf.s.assign(n * static_cast<size_t>(st.s), 0);
  buf.bsum.assign(n * static_cast<size_t>(st.bsum), 0);
  for (int64_t t = 0; t < n_tokens; ++t)
    quantize_token(k, block, x + t * cols, cols, buf.q.data() + t * st.q, buf.qu.data() + t * st.q,
                   buf.d.data() + t * st.d, buf.s.data() + t * st.s, buf.bsum.data() + t * st.bsum);
  buf.view = Int8Acts{cols, n_tokens, buf.q.data(), buf.qu.data(), buf.d.data(), block == 32 ? buf.s.data() : nullptr,
                      block, block == 256 ? buf.bsum.data() : nullptr};
  return buf.view;
}

void get_row(const WeightMatrix& w, int64_t r, float* out) { active_kernels().dequantize(w.type, w.row(r), out, w.cols); }

void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  active_kernels().rms_norm(x, weight, eps, n, y);
}

void layer_norm(const float* x, const float* weight, const float* bias, float eps, int64_t n, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>((x[i] - mean) * inv) * weight[i];
    y[i] = bias ? v + bias[i] : v;
  }
}

void gelu(const float* x, int64_t n, float* out) {
  constexpr double kInvSqrt2 = 0.70710678118654752440;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    out[i] = static_cast<float>(0.5 * v * (1.0 + std::erf(v * kInvSqrt2)));
  }
}

void rope(float* head, const float* cos, const float* sin, int n_pairs, bool neox) {
  active_kernels().rope(head, cos, sin, n_pairs, neox);
}

void softmax(float* x, int64_t n) { active_kernels().softmax(x, n); }

void swiglu(const float* gate, const float* up, int64_t n, float* out) { active_kernels().swiglu(gate, up, n, out); }

float dot(const float* a, const float* b, int64_t n) { return active_kernels().dot(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { active_kernels().axpy(a, x, y, n); }

void attend(const AttendTile& a, float* scratch) { active_kernels().attend(a, scratch); }

int64_t attend_scratch(int64_t n_queries, int64_t dk, int64_t dv) { return tiled::scratch_floats(n_queries, dk, dv); }

void attend_chunk(const AttendTile& a, int64_t chunk, float* part, float* scratch) {
  active_kernels().attend_chunk(a, chunk, part, scratch);
}

void attend_merge(const AttendTile& a, float* parts) { active_kernels().attend_merge(a, parts); }

int64_t attend_chunks(const AttendTile& a) { return tiled::chunk_count(a); }

int64_t attend_part_floats(int64_t n_queries, int64_t dv) { return tiled::part_floats(n_queries, dv); }

int64_t attend_chunk_scratch(int64_t n_queries, int64_t dk, int64_t dv) {
  return tiled::chunk_scratch_floats(n_queries, dk, dv);
}

}  // namespace volga::kernels
