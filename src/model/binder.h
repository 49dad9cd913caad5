// Binder — finds a model's tensors in its GGUF file, checks their shapes and
// returns weight views (no copies) or dequantized vectors. Errors name the
// tensor and the expected shape. Internal to the model layer.
#pragma once

#include <string>
#include <vector>

#include "format/gguf.h"
#include "tensor/quant.h"
#include "tensor/weight.h"
#include "util/error.h"

namespace volga {

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const TensorInfo* find(const std::string& name) const { return f_.find_tensor(name); }

  const TensorInfo& require(const std::string& name, std::vector<int64_t> shape) const {
    const TensorInfo* t = f_.find_tensor(name);
    if (!t) throw Error("model '" + f_.path() + "' is missing tensor '" + name + "'");
    check_shape(*t, shape);
    return *t;
  }

  WeightMatrix matrix(const std::string& name, int64_t cols, int64_t rows) const {
    return view(require(name, {cols, rows}));
  }

  // A [cols, rows, n] tensor as n matrices (expert weights, ffn_*_exps).
  std::vector<WeightMatrix> matrices(const std::string& name, int64_t cols, int64_t rows, int64_t n) const {
    WeightMatrix all = view(require(name, {cols, rows, n}));
    std::vector<WeightMatrix> out(static_cast<size_t>(n), all);
    for (int64_t e = 0; e < n; ++e) {
      out[static_cast<size_t>(e)].rows = rows;
      out[static_cast<size_t>(e)].data = all.data + e * rows * all.row_stride;
    }
    return out;
  }

  static WeightMatrix view(const TensorInfo& t) {
    WeightMatrix m;
    m.type = t.type;
    m.cols = t.ne[0];
    m.rows = t.ne[1] * t.ne[2] * t.ne[3];
    m.row_stride = row_bytes(t.type, t.ne[0]);
    m.data = t.data;
    return m;
  }

  std::vector<float> vector(const std::string& name, int64_t n, bool required = true) const {
    const TensorInfo* t = f_.find_tensor(name);
    if (!t) {
      if (required) throw Error("model '" + f_.path() + "' is missing tensor '" + name + "'");
      return {};
    }
    check_shape(*t, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t->type, t->data, v.data(), n);
    return v;
  }

 private:
  void check_shape(const TensorInfo& t, const std::vector<int64_t>& shape) const {
    bool ok = true;
    for (int d = 0; d < 4; ++d) {
      int64_t want = d < static_cast<int>(shape.size()) ? shape[d] : 1;
      ok &= t.ne[d] == want;
    }
    if (!ok) {
      std::string want = "[";
      for (size_t d = 0; d < shape.size(); ++d) want += (d ? ", " : "") + std::to_string(shape[d]);
      throw Error("model '" + f_.path() + "': tensor '" + t.name + "' has shape " + t.shape_string() +
                  ", expected " + want + "]");
    }
  }
  const GgufFile& f_;
};

}  // namespace volga
