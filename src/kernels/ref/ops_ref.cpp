// Scalar reference kernels: the ground truth for every ISA-specific variant
// and the fallback on any CPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/attend_tiled.h"
#include "kernels/dispatch.h"
#include "kernels/float_order.h"
#include "kernels/ref/int8_ref.h"
#include "tensor/quant.h"

namespace volga::kernels {

namespace {
// A product rounded on its own, never fused with a following add (the
// SIMD kernels' exp evaluates it the same way).
inline float rounded(float x) {
#if defined(__x86_64__)
  asm("" : "+x"(x));
#endif
  return x;
}

// exp(x) as the SIMD kernels' vexp computes it, lane for lane: x clamped to
// [-87.3, 88.7], 2^(x log2 e) split into an integer and a fraction, the
// fraction's power by a degree-6 polynomial in fused multiply-adds.
float exp_poly(float x) {
  x = std::min(std::max(x, -87.3f), 88.7f);
  const float t = rounded(x * 1.44269504088896341f);
  const float fi = std::floor(t);
  const float f = t - fi;
  float p = 1.535336188319500e-4f;
  p = std::fma(p, f, 1.339887440266574e-3f);
  p = std::fma(p, f, 9.618437357674640e-3f);
  p = std::fma(p, f, 5.550332471162809e-2f);
  p = std::fma(p, f, 2.402264791363012e-1f);
  p = std::fma(p, f, 6.931472028550421e-1f);
  p = std::fma(p, f, 1.0f);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(fi) + 127) << 23;
  float two;
  std::memcpy(&two, &bits, 4);
  return p * two;
}

// The canonical 16-lane dot product of kernels/float_order.h, one lane at a time.
float dot_ref(const float* a, const float* b, int64_t n) {
  constexpr int kL = float_order::kDotLanes;
  float L[kL] = {};
  int64_t k = 0;
  for (; k + kL <= n; k += kL)
    for (int l = 0; l < kL; ++l) L[l] = std::fma(a[k + l], b[k + l], L[l]);
  return float_order::finish_dot(L, a + k, b + k, n - k);
}

// The canonical 8-lane double sum of x[i] (or x[i]^2) of kernels/float_order.h.
double sum_ref(const float* x, int64_t n, bool square) {
  double L[float_order::kSumLanes] = {};
  return float_order::finish_sum(L, x, n, square);
}

void axpy_ref(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
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
  const double ss = sum_ref(x, n, true);
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void softmax_ref(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  for (int64_t i = 0; i < n; ++i) x[i] = exp_poly(x[i] - mx);
  const float inv = static_cast<float>(1.0 / sum_ref(x, n, false));
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
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + exp_poly(0.0f - gate[i])) * up[i];
}

void rope_ref(float* head, const float* cos, const float* sin, int n_pairs, bool neox) {
  for (int i = 0; i < n_pairs; ++i) {
    const int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
    const float x0 = head[a], x1 = head[b];
    head[a] = x0 * cos[i] - x1 * sin[i];
    head[b] = x0 * sin[i] + x1 * cos[i];
  }
}

// The operations of the tiled attention (kernels/attend_tiled.h), one
// scalar at a time in the order that header defines.
struct AttendOps {
  static void dequantize(DType type, const void* src, float* dst, int64_t n) { dequantize_row(type, src, dst, n); }
  // kt[j * 32 + i] = rows[i * stride + j] for i < n, j < dk.
  static void transpose_rows(const float* rows, int64_t stride, int n, int64_t dk, float* kt) {
    for (int i = 0; i < n; ++i)
      for (int64_t j = 0; j < dk; ++j) kt[j * tiled::kB + i] = rows[i * stride + j];
  }
  static void scores(const float* Q, int64_t n, int64_t dk, const float* kt, float scale, float* S) {
    for (int64_t r = 0; r < n; ++r)
      for (int i = 0; i < tiled::kB; ++i) {
        float s = 0;
        for (int64_t j = 0; j < dk; ++j) s = std::fma(Q[r * dk + j], kt[j * tiled::kB + i], s);
        S[r * tiled::kB + i] = s * scale;
      }
  }
  static float update(float* s, int rows, float& m, float* L) {
    float mb = s[0];
    for (int i = 1; i < rows; ++i) mb = std::max(mb, s[i]);
    const float m_new = std::max(m, mb);
    const float alpha = std::isinf(m) ? 1.0f : exp_poly(m - m_new);
    m = m_new;
    for (int i = 0; i < tiled::kB; ++i) {
      const float p = i < rows ? exp_poly(s[i] - m_new) : 0.0f;
      s[i] = p;
      L[i] = std::fma(L[i], alpha, p);
    }
    return alpha;
  }
  static void accumulate(const float* P, const float* alpha, int64_t n, int rows, const float* v, int64_t vstride,
                         int64_t dv, float* O) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t d = 0; d < dv; ++d) {
        float o = O[r * dv + d] * alpha[r];
        for (int i = 0; i < rows; ++i) o = std::fma(P[r * tiled::kB + i], v[i * vstride + d], o);
        O[r * dv + d] = o;
      }
  }
  static void scale_out(const float* o, float inv, int64_t dv, float* out) {
    for (int64_t d = 0; d < dv; ++d) out[d] = o[d] * inv;
  }
  // Chunk merging (attend_tiled.h): no streaming path, exp as vexp's lanes,
  // acc[i] = fma(part[i], b, acc[i] * a).
  static constexpr int64_t kStreamQueries = 0;
  static float exp1(float x) { return exp_poly(x); }
  static void merge_rows(float* acc, const float* part, float a, float b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) acc[i] = std::fma(part[i], b, rounded(acc[i] * a));
  }
};

void attend_ref(const AttendTile& a, float* scratch) { tiled::attend<AttendOps>(a, scratch); }
void attend_chunk_ref(const AttendTile& a, int64_t c, float* part, float* scratch) {
  tiled::attend_chunk<AttendOps>(a, c, part, scratch);
}
void attend_merge_ref(const AttendTile& a, float* parts) { tiled::attend_merge<AttendOps>(a, parts); }
}  // namespace

const KernelTable& ref_kernels() {
  static const KernelTable t{Isa::Ref, "ref", dequantize_row, matmul_rows_ref, quantize_acts_ref, quantize_acts_k_ref,
                             matmul_rows_int8_ref, dot_ref, axpy_ref,
                             rms_norm_ref, softmax_ref, swiglu_ref, fma_probe_ref, attend_ref, attend_chunk_ref,
                             attend_merge_ref, rope_ref};
  return t;
}

}  // namespace volga::kernels

#if !defined(__x86_64__)
namespace volga::kernels {
double int8_probe(int64_t) { return 0; }
}  // namespace volga::kernels
#endif
