// Scalar reference kernels: the ground truth for every ISA-specific variant
// and the fallback on any CPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/ref/int8_ref.h"
#include "tensor/quant.h"

namespace volga::kernels {

namespace {
float dot_ref(const float* a, const float* b, int64_t n) {
  // Four partial sums: deterministic, and keeps rounding error of long rows low.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; ++k) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

void axpy_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void matmul_rows_ref(const WeightMatrix& w, int64_t r0, int64_t r1, const float* x, int64_t n_tokens, float* y,
                     int64_t ldy) {
  const int64_t K = w.cols;
  std::vector<float> row(w.type == DType::F32 ? 0 : static_cast<size_t>(K));
  for (int64_t r = r0; r < r1; ++r) {
    const float* wr;
    if (w.type == DType::F32) {
      wr = reinterpret_cast<const float*>(w.row(r));
    } else {
      dequantize_row(w.type, w.row(r), row.data(), K);
      wr = row.data();
    }
    for (int64_t t = 0; t < n_tokens; ++t) y[t * ldy + r] = dot_ref(wr, x + t * K, K);
  }
}

void rms_norm_ref(const float* x, const float* weight, float eps, int64_t n, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void softmax_ref(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double fma_probe_ref(int64_t iters) {
  constexpr int kAcc = 8;
  float acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = static_cast<float>(i);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kAcc; ++i) acc[i] = std::fma(acc[i], 0.999999f, 1e-7f);
  volatile float sink = acc[0] + acc[kAcc - 1];
  (void)sink;
  return 2.0 * kAcc * static_cast<double>(iters);
}

void swiglu_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void rope_ref(float* head, const float* cos, const float* sin, int n_pairs, bool neox) {
  for (int i = 0; i < n_pairs; ++i) {
    const int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * cos[i] - x1 * sin[i];
    head[b] = x0 * sin[i] + x1 * cos[i];
  }
}

// The float rows of block b of a paged cache: in place for f32, else
// converted into `tile`; `stride` gets the floats between rows.
const float* paged_block(const PagedRows& r, int64_t b, int rows, int64_t width, float* tile, int64_t& stride) {
  const uint8_t* src = r.block(b);
  if (r.type == DType::F32) {
    stride = r.row_bytes / static_cast<int64_t>(sizeof(float));
    return reinterpret_cast<const float*>(src);
  }
  for (int i = 0; i < rows; ++i) dequantize_row(r.type, src + i * r.row_bytes, tile + i * width, width);
  stride = width;
  return tile;
}

void attend_ref(const float* q, int group, int64_t dk, int64_t dv, const PagedRows& keys, const PagedRows& values,
                int n_pos, float scale, float* scratch, float* out) {
  float* scores = scratch;
  float* tile = scratch + static_cast<int64_t>(group) * n_pos;
  for (int p0 = 0; p0 < n_pos; p0 += kKvBlockTokens) {
    const int rows = std::min(kKvBlockTokens, n_pos - p0);
    int64_t ks;
    const float* k = paged_block(keys, p0 / kKvBlockTokens, rows, dk, tile, ks);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < rows; ++i)
        scores[static_cast<int64_t>(g) * n_pos + p0 + i] = dot_ref(q + g * dk, k + i * ks, dk) * scale;
  }
  for (int g = 0; g < group; ++g) softmax_ref(scores + static_cast<int64_t>(g) * n_pos, n_pos);
  for (int64_t i = 0; i < group * dv; ++i) out[i] = 0;
  for (int p0 = 0; p0 < n_pos; p0 += kKvBlockTokens) {  // per output element: ascending p, as axpy
    const int rows = std::min(kKvBlockTokens, n_pos - p0);
    int64_t vs;
    const float* v = paged_block(values, p0 / kKvBlockTokens, rows, dv, tile, vs);
    for (int g = 0; g < group; ++g)
      for (int i = 0; i < rows; ++i) axpy_ref(scores[static_cast<int64_t>(g) * n_pos + p0 + i], v + i * vs, out + g * dv, dv);
  }
}
}  // namespace

const KernelTable& ref_kernels() {
  static const KernelTable t{Isa::Ref, "ref", dequantize_row, matmul_rows_ref, quantize_acts_ref,
                             matmul_rows_int8_ref, dot_ref, axpy_ref,
                             rms_norm_ref, softmax_ref, swiglu_ref, fma_probe_ref, attend_ref, rope_ref};
  return t;
}

}  // namespace volga::kernels

#if !defined(__x86_64__)
namespace volga::kernels {
double int8_probe(int64_t) { return 0; }
}  // namespace volga::kernels
#endif
