// Scalar reference of the Gated DeltaNet kernels (kernels/deltanet.h defines
// the arithmetic; every ISA follows it operation for operation).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/deltanet.h"

namespace volga::kernels {

namespace {

void conv_step_ref(const float* wt, float* hist, const float* cur, int64_t C, int64_t K, float* y) {
  for (int64_t c = 0; c < C; ++c) {
    float acc = wt[c] * hist[c];
    for (int64_t i = 1; i < K - 1; ++i) acc = std::fma(wt[i * C + c], hist[i * C + c], acc);
    y[c] = std::fma(wt[(K - 1) * C + c], cur[c], acc);
  }
  std::memmove(hist, hist + C, static_cast<size_t>((K - 2) * C) * sizeof(float));
  std::memcpy(hist + (K - 2) * C, cur, static_cast<size_t>(C) * sizeof(float));
}

void delta_step_ref(float* S, const float* q, const float* k, const float* v, float decay, float beta, int64_t dk,
                    int64_t dv, float* kv, float* o) {
  std::fill(kv, kv + dv, 0.0f);
  for (int64_t i = 0; i < dk; ++i)
    for (int64_t j = 0; j < dv; ++j) {
      const float s = S[i * dv + j] * decay;
      kv[j] = std::fma(k[i], s, kv[j]);
    }
  for (int64_t j = 0; j < dv; ++j) kv[j] = (v[j] - kv[j]) * beta;
  std::fill(o, o + dv, 0.0f);
  for (int64_t i = 0; i < dk; ++i)
    for (int64_t j = 0; j < dv; ++j) {
      const float s = S[i * dv + j] * decay;
      S[i * dv + j] = std::fma(k[i], kv[j], s);
      o[j] = std::fma(q[i], S[i * dv + j], o[j]);
    }
}

}  // namespace

const DeltaNetKernels& deltanet_ref_kernels() {
  static const DeltaNetKernels table{"ref", conv_step_ref, delta_step_ref};
  return table;
}

}  // namespace volga::kernels
