// Shared fixtures of the kernel tests: the ISAs this CPU runs, random
// activations, and quantized matrices laid out as in a GGUF file.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/dispatch.h"
#include "tensor/quant.h"

namespace volga::test {

inline std::vector<kernels::Isa> available_isas() {
  std::vector<kernels::Isa> out;
  for (kernels::Isa isa : {kernels::Isa::Ref, kernels::Isa::Avx2, kernels::Isa::Avx512})
    if (kernels::isa_available(isa)) out.push_back(isa);
  return out;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

// rows x cols of random values quantized to t. Misaligned for vector loads
// (the SIMD kernels must not assume 16/32/64-byte alignment), but aligned for
// the scalars the block formats hold, as in a GGUF file.
inline Matrix make_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  Matrix m;
  auto src = random_floats(static_cast<size_t>(rows * cols), seed);
  const int64_t stride = row_bytes(t, cols);
  m.bytes.resize(static_cast<size_t>(stride * rows) + 4);
  uint8_t* base = m.bytes.data() + 4;
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, src.data() + r * cols, base + r * stride, cols);
  m.w = WeightMatrix{t, rows, cols, stride, base};
  return m;
}

}  // namespace volga::test
