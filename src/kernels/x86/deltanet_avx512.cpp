// Gated DeltaNet kernels, AVX-512F: 16 float lanes (kernels/deltanet.h defines the
// arithmetic, x86/deltanet_simd.h the loops). Compiled with this ISA's flags;
// only called after CPUID says so.
#include <immintrin.h>

#include "kernels/deltanet.h"
#include "kernels/x86/deltanet_simd.h"

namespace volga::kernels {

namespace {

struct Policy {
  static constexpr int W = 16;
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // A scalar product the compiler must round on its own (never fused into a
  // following add under -ffp-contract=fast), as in the reference.
  static float round_mul(float a, float b) {
    float x = a * b;
    asm("" : "+x"(x));
    return x;
  }
};

}  // namespace

const DeltaNetKernels& deltanet_avx512_kernels() {
  static const DeltaNetKernels table{"avx512", deltanet_simd::conv_step<Policy>, deltanet_simd::delta_step<Policy>};
  return table;
}

}  // namespace volga::kernels
