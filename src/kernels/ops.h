// Numerical operations of the forward pass. Each entry point checks nothing in
// release builds (callers validate shapes at load time) and runs the kernel of
// the ISA chosen at start-up (kernels/dispatch.h).
// Thread-safety: functions are pure; those taking a ThreadPool must be called
// from the thread that owns the pool.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/paged_rows.h"
#include "tensor/weight.h"
#include "util/thread_pool.h"

namespace volga::kernels {

// y[t][r] = sum_k w[r][k] * x[t][k] for t < n_tokens, r < w.rows.
// x is [n_tokens][w.cols], y is [n_tokens][w.rows], both row-major float.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// An observer of the inputs of matmul and matmul_multi (volga imatrix): called
// on the calling thread with each weight matrix and its n_tokens input rows
// before the product. Null (the default) costs one branch per product. Not
// to be changed while products run.
using MatmulObserver = void (*)(const WeightMatrix& w, const float* x, int64_t n_tokens, void* context);
void set_matmul_observer(MatmulObserver observer, void* context);

// Grouped products, one matrix per group (attention heads): for g < n_groups,
// y[g][t][r] = sum_k w[g][r][k] * x[g][t][k]. All matrices share rows and cols;
// x is [n_groups][n_tokens][cols], y is [n_groups][n_tokens][rows].
void matmul_grouped(const WeightMatrix* w, int64_t n_groups, const float* x, int64_t n_tokens, float* y,
                    ThreadPool& pool);

// Several products of one input: y[i] = matmul(*w[i], x) for i < n, all
// w[i] with the same cols. One activation quantization and one pass of the
// pool over all the rows, instead of one each: q/k/v and gate/up in decode
// are small enough that the pool's synchronisation shows. Results are
// bit-identical to separate matmul calls.
void matmul_multi(const WeightMatrix* const* w, float* const* y, int n, const float* x, int64_t n_tokens,
                  ThreadPool& pool);

// One product of a batch run by matmul_batch: y = matmul(*w, x) for
// n_tokens rows of x ([n_tokens][w->cols] floats) into y ([n_tokens][w->rows]).
struct MatmulJob {
  const WeightMatrix* w = nullptr;
  const float* x = nullptr;
  int64_t n_tokens = 0;
  float* y = nullptr;
};

// Independent products in one pass of the pool: all jobs' 16-row tiles are
// handed out from one shared counter, so the selected experts of a mixture
// of experts (and its shared expert) cost one synchronisation, not one per
// matrix, and a thread that finishes one matrix goes on with the next.
// Jobs with the same x pointer, cols and n_tokens share one activation
// quantization. Any mix of types; results are bit-identical to one matmul
// per job (a row's result depends only on its weights and its token's
// activations). Each job is shown to the matmul observer.
void matmul_batch(const MatmulJob* jobs, int n, ThreadPool& pool);

// Activations quantized for the integer products (Int8Acts, kernels/dispatch.h)
// with buffers the caller owns: for tests and benchmarks, which call one
// ISA's products directly. `view` points into the vectors.
struct Int8ActsBuffer {
  std::vector<int8_t> q;
  std::vector<uint8_t> qu;
  std::vector<float> d, s;
  std::vector<int16_t> bsum;
  Int8Acts view;
};
// n_tokens rows of x ([n_tokens][cols]) quantized with table k's quantizer
// in the scheme the products of `type` take (int8_acts_block).
const Int8Acts& quantize_int8_acts(const KernelTable& k, DType type, const float* x, int64_t cols, int64_t n_tokens,
                                   Int8ActsBuffer& buf);

// Attention of a tile of queries that share a key/value head, reading the
// rows through a paged cache (see AttendTile in kernels/dispatch.h); scratch
// holds attend_scratch(n_tokens * group, dk, dv) floats.
void attend(const AttendTile& a, float* scratch);
int64_t attend_scratch(int64_t n_queries, int64_t dk, int64_t dv);
// The two-step form (KernelTable::attend_chunk / attend_merge): chunks a tile
// attends to, floats of one chunk's partial and of attend_chunk's scratch.
void attend_chunk(const AttendTile& a, int64_t chunk, float* part, float* scratch);
void attend_merge(const AttendTile& a, float* parts);
int64_t attend_chunks(const AttendTile& a);
int64_t attend_part_floats(int64_t n_queries, int64_t dv);
int64_t attend_chunk_scratch(int64_t n_queries, int64_t dk, int64_t dv);

// out[k] = w[r][k] (dequantized row), e.g. an embedding lookup.
void get_row(const WeightMatrix& w, int64_t r, float* out);

// y = x / sqrt(mean(x^2) + eps) * weight, over n elements (y may alias x).
void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y);

// y = (x - mean) / sqrt(variance + eps) * weight + bias over n elements
// (LayerNorm; y may alias x; bias may be null). One scalar path on every
// ISA: mean and variance are summed in double, in index order.
void layer_norm(const float* x, const float* weight, const float* bias, float eps, int64_t n, float* y);

// Rotary position embedding, in place, on the first 2*n_pairs elements of one head.
// neox: pairs (i, i + n_pairs); otherwise adjacent pairs (2i, 2i+1).
void rope(float* head, const float* cos, const float* sin, int n_pairs, bool neox);

// In-place numerically stable softmax over n elements.
void softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// out[i] = x[i] * Phi(x[i]) = 0.5 x (1 + erf(x / sqrt 2)): the exact GELU of
// BERT's "gelu" activation (out may alias x). One scalar path on every ISA.
void gelu(const float* x, int64_t n, float* out);

// sum a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);

// y[i] += a * x[i]
void axpy(float a, const float* x, float* y, int64_t n);

}  // namespace volga::kernels
