// Scalar reference kernels: the ground truth for every ISA-specific variant.
#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tensor/quant.h"

namespace volga::kernels {

namespace {
float dot_f32(const float* a, const float* b, int64_t n) {
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
}  // namespace

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t K = w.cols;
  pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> row(w.type == DType::F32 ? 0 : static_cast<size_t>(K));
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr;
      if (w.type == DType::F32) {
        wr = reinterpret_cast<const float*>(w.row(r));
      } else {
        dequantize_row(w.type, w.row(r), row.data(), K);
        wr = row.data();
      }
      for (int64_t t = 0; t < n_tokens; ++t) y[t * w.rows + r] = dot_f32(wr, x + t * K, K);
    }
  }, 4);
}

void get_row(const WeightMatrix& w, int64_t r, float* out) { dequantize_row(w.type, w.row(r), out, w.cols); }

void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void rope(float* head, const float* cos, const float* sin, int n_pairs, bool neox) {
  for (int i = 0; i < n_pairs; ++i) {
    int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
    float x0 = head[a], x1 = head[b];
    head[a] = x0 * cos[i] - x1 * sin[i];
    head[b] = x0 * sin[i] + x1 * cos[i];
  }
}

void softmax(float* x, int64_t n) {
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

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace volga::kernels
