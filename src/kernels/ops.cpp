// The thin front of the kernels: checks nothing in release builds (callers
// validate shapes at load time), splits work over the thread pool, and calls
// the active ISA's table.
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/dispatch.h"

namespace volga::kernels {

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const KernelTable& k = active_kernels();
  // Tiles of 16 rows: enough work per task to hide scheduling, small enough
  // that both cores stay busy on the narrowest matrices (a few hundred rows).
  pool.parallel_for((w.rows + 15) / 16, [&](int64_t b0, int64_t b1, int) {
    k.matmul_rows(w, b0 * 16, std::min(w.rows, b1 * 16), x, n_tokens, y, w.rows);
  }, 1);
}

void matmul_grouped(const WeightMatrix* w, int64_t n_groups, const float* x, int64_t n_tokens, float* y,
                    ThreadPool& pool) {
  const KernelTable& k = active_kernels();
  const int64_t rows = w[0].rows, cols = w[0].cols, tiles = (rows + 15) / 16;
  pool.parallel_for(n_groups * tiles, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t g = b / tiles, r0 = (b % tiles) * 16;
      k.matmul_rows(w[g], r0, std::min(rows, r0 + 16), x + g * n_tokens * cols, n_tokens, y + g * n_tokens * rows, rows);
    }
  }, 1);
}

void get_row(const WeightMatrix& w, int64_t r, float* out) { active_kernels().dequantize(w.type, w.row(r), out, w.cols); }

void rms_norm(const float* x, const float* weight, float eps, int64_t n, float* y) {
  active_kernels().rms_norm(x, weight, eps, n, y);
}

void rope(float* head, const float* cos, const float* sin, int n_pairs, bool neox) {
  for (int i = 0; i < n_pairs; ++i) {
    int a = neox ? i : 2 * i, b = neox ? i + n_pairs : 2 * i + 1;
    float x0 = head[a], x1 = head[b];
    head[a] = x0 * cos[i] - x1 * sin[i];
    head[b] = x0 * sin[i] + x1 * cos[i];
  }
}

void softmax(float* x, int64_t n) { active_kernels().softmax(x, n); }

void swiglu(const float* gate, const float* up, int64_t n, float* out) { active_kernels().swiglu(gate, up, n, out); }

float dot(const float* a, const float* b, int64_t n) { return active_kernels().dot(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { active_kernels().axpy(a, x, y, n); }

}  // namespace volga::kernels
