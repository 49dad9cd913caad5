// WeightMatrix — a read-only view of a 2-D weight in its stored (possibly
// quantized) layout: `rows` rows of `cols` elements, each row `row_stride`
// bytes. For a GGUF tensor, cols = ne[0] and rows = ne[1]. Does not own data.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace volga {

struct WeightMatrix {
  DType type = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // bytes
  const uint8_t* data = nullptr;

  const uint8_t* row(int64_t r) const { return data + r * row_stride; }
};

}  // namespace volga
