// Gated DeltaNet kernels, AVX2 + FMA: 8 float lanes (kernels/deltanet.h defines the
// arithmetic, x86/deltanet_simd.h the loops). Compiled with this ISA's flags;
// only called after CPUID says so.
#include <immintrin.h>

#include "kernels/deltanet.h"
#include "kernels/x86/deltanet_simd.h"

namespace volga::kernels {

namespace {

struct Policy {
  static constexpr int W = 8;
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // A scalar product the compiler must round on its own (never fused into a
  // following add under -ffp-contract=fast), as in the reference.
  static float round_mul(float a, float b) {
    float x = a * b;
    asm("" : "+x"(x));
    return x;
  }
};

}  // namespace

const DeltaNetKernels& deltanet_avx2_kernels() {
  static const DeltaNetKernels table{"avx2", deltanet_simd::conv_step<Policy>, deltanet_simd::delta_step<Policy>};
  return table;
}

}  // namespace volga::kernels
