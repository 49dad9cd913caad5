// Importance matrices: for each weight matrix, the sum over a calibration
// text of the squared activations entering each input column (per expert for
// mixture-of-experts tensors), and how many token rows were summed. The
// low-bit quantizers weigh each column's error by it. Files are read and
// written in llama.cpp's formats: GGUF (general.type "imatrix", tensors
// NAME.in_sum2 [cols, n_mat] and NAME.counts [1, n_mat]) and the legacy .dat.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "tensor/weight.h"

namespace volga {

struct ImatrixEntry {
  int64_t cols = 0;
  std::vector<double> sums;    // [n_mat][cols]
  std::vector<double> counts;  // [n_mat]: token rows summed
  int64_t n_mat() const { return static_cast<int64_t>(counts.size()); }
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name ("blk.0.attn_q.weight")
  std::vector<std::string> datasets;
  int64_t chunk_count = 0, chunk_size = 0;

  // Per-column weights for matrix `mat` of `name` (mean squared activation),
  // or empty when the file has no entry. Throws volga::Error when the entry's
  // width is not `cols`.
  std::vector<float> weights(const std::string& name, int64_t mat, int64_t cols) const;
};

// Reads a GGUF or legacy .dat importance matrix; throws volga::Error with the
// file name on a malformed or truncated file or non-finite values.
Imatrix read_imatrix(const std::string& path);
// The same from bytes in memory (`name` names them in errors).
Imatrix parse_imatrix(const uint8_t* data, size_t size, const std::string& name);
void write_imatrix_gguf(const Imatrix& m, const std::string& path);
void write_imatrix_dat(const Imatrix& m, const std::string& path);

// Collects an importance matrix from the products a model runs: while it
// lives, every matmul input is added to the entry of the GGUF tensor the
// weight rows belong to (found by address: the model's weights are views of
// the file). The output head is left out, as llama-imatrix does by default.
class ImatrixCollector {
 public:
  explicit ImatrixCollector(const GgufFile& file);
  ~ImatrixCollector();
  ImatrixCollector(const ImatrixCollector&) = delete;
  ImatrixCollector& operator=(const ImatrixCollector&) = delete;

  Imatrix& result() { return m_; }
  // Products whose weights were not found among the file's tensors.
  int64_t unmatched() const { return unmatched_; }

 private:
  static void observe(const WeightMatrix& w, const float* x, int64_t n_tokens, void* self);
  struct Span {
    const uint8_t* begin;
    const uint8_t* end;
    std::string name;
    int64_t cols, mat_bytes, n_mat;
  };
  std::vector<Span> spans_;  // sorted by begin
  Imatrix m_;
  int64_t unmatched_ = 0;
};

}  // namespace volga
