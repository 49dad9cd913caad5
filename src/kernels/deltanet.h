// Kernels of the Gated DeltaNet layers (qwen35, qwen35moe): one step of the
// short causal convolution over the q/k/v channels and one step of the gated
// delta rule for one value head. A small table of its own per ISA, chosen
// with the main table (VOLGA_ISA), so this family stays in its own files.
//
// Arithmetic (identical on every ISA, so results are bit-identical across
// ISAs and whatever batch a token came in; no horizontal sums anywhere: the
// vector lanes are independent output elements, and each output's terms are
// added in one fixed order with fused multiply-adds):
//
// conv_step, channel c, K taps, hist the K-1 previous inputs (oldest first):
//   acc = w[0][c] * hist[0][c]                       (rounded product)
//   acc = fma(w[i][c], hist[i][c], acc)              i = 1 .. K-2
//   y[c] = fma(w[K-1][c], cur[c], acc)
// then hist shifts by one row and `cur` becomes its last row. Weights are
// stored tap-major, wt[i * C + c] (the GGUF tensor is channel-major).
//
// delta_step, state S [dk][dv] (row i = key dimension i), decay d = exp(g):
//   s[i][j]   = S[i][j] * d                          (rounded product)
//   kv[j]     = fma(k[i], s[i][j], kv[j])            i = 0 .. dk-1, kv from 0
//   u[j]      = (v[j] - kv[j]) * beta
//   S[i][j]   = fma(k[i], u[j], s[i][j])
//   o[j]      = fma(q[i], S[i][j], o[j])             i = 0 .. dk-1, o from 0
// which is the published recurrence S = d S + beta k (v - d S^T k)^T,
// o = S^T q, with the sums over the key dimension in ascending order.
//
// Thread-safety: the tables are immutable; the functions are reentrant.
#pragma once

#include <cstdint>

#include "kernels/dispatch.h"

namespace volga::kernels {

struct DeltaNetKernels {
  const char* name;
  // y[0..C) from the state hist [K-1][C] and the current input cur[0..C);
  // then shifts hist and appends cur. wt: [K][C]. K >= 2.
  void (*conv_step)(const float* wt, float* hist, const float* cur, int64_t C, int64_t K, float* y);
  // One token of one value head: updates S [dk][dv] in place, writes o[0..dv).
  // scratch: dv floats.
  void (*delta_step)(float* S, const float* q, const float* k, const float* v, float decay, float beta, int64_t dk,
                     int64_t dv, float* scratch, float* o);
};

// Throws volga::Error when the ISA is not available.
const DeltaNetKernels& deltanet_kernels(Isa isa);
// The set of the active kernel table's ISA (VOLGA_ISA, else the best).
const DeltaNetKernels& active_deltanet_kernels();

// Per-ISA tables (defined in their translation units).
const DeltaNetKernels& deltanet_ref_kernels();
#if defined(__x86_64__)
const DeltaNetKernels& deltanet_avx2_kernels();
const DeltaNetKernels& deltanet_avx512_kernels();
#endif

}  // namespace volga::kernels
