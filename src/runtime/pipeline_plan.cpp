#include "runtime/pipeline_plan.h"

#include <cmath>
#include <cstdio>

#include "format/gguf.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace volga {

namespace {

// The layer number of a "blk.N.*" tensor, or -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t n = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && n < (int64_t{1} << 30); ++i) n = n * 10 + (name[i] - '0');
  return i < name.size() && name[i] == '.' ? n : -1;
}

PipelinePlan plan_from_ends(const ModelBytes& bytes, const ModelSpec& spec, const std::vector<int64_t>& ends) {
  PipelinePlan plan;
  const int64_t kv_row = row_bytes(DType::F16, spec.kv_key_width()) + row_bytes(DType::F16, spec.kv_value_width());
  int64_t first = 0;
  for (size_t r = 0; r < ends.size(); ++r) {
    plan.stages.push_back(StageRange{first, ends[r], r == 0});
    int64_t w = r == 0 ? bytes.other : 0;
    for (int64_t l = first; l < ends[r]; ++l) w += bytes.layer[static_cast<size_t>(l)];
    plan.weight_bytes.push_back(w);
    plan.kv_bytes_per_position.push_back((ends[r] - first) * kv_row);
    first = ends[r];
  }
  return plan;
}

void check_ranks(const ModelSpec& spec, size_t n_ranks) {
  if (n_ranks == 0) throw Error("a pipeline needs at least one rank");
  if (static_cast<int64_t>(n_ranks) > spec.n_layer)
    throw Error(std::to_string(n_ranks) + " ranks are more than the model's " + std::to_string(spec.n_layer) +
                " layers: every rank needs at least one layer");
}

}  // namespace

ModelBytes model_bytes(const GgufFile& file, const ModelSpec& spec) {
  ModelBytes b;
  b.layer.assign(static_cast<size_t>(spec.n_layer), 0);
  for (const TensorInfo& t : file.tensors()) {
    const int64_t l = layer_of(t.name);
    if (l >= 0 && l < spec.n_layer) b.layer[static_cast<size_t>(l)] += static_cast<int64_t>(t.n_bytes);
    else b.other += static_cast<int64_t>(t.n_bytes);
  }
  return b;
}

PipelinePlan plan_by_capacity(const ModelBytes& bytes, const ModelSpec& spec, const std::vector<double>& capacity) {
  const size_t n = capacity.size();
  check_ranks(spec, n);
  double total_cap = 0;
  for (double c : capacity) {
    if (!(c > 0) || !std::isfinite(c)) throw Error("every rank needs a positive memory capacity to plan the split");
    total_cap += c;
  }
  std::vector<double> prefix(1, static_cast<double>(bytes.other));  // bytes of rank 0's head + layers [0, e)
  for (int64_t v : bytes.layer) prefix.push_back(prefix.back() + static_cast<double>(v));
  const double total = prefix.back();
  std::vector<int64_t> ends;
  int64_t prev = 0;
  double cum = 0;
  for (size_t r = 0; r + 1 < n; ++r) {
    cum += capacity[r] / total_cap * total;
    // The boundary nearest the cumulative target, leaving a layer for each later rank.
    const int64_t lo = prev + 1, hi = spec.n_layer - static_cast<int64_t>(n - 1 - r);
    int64_t best = lo;
    for (int64_t e = lo; e <= hi; ++e)
      if (std::fabs(prefix[static_cast<size_t>(e)] - cum) < std::fabs(prefix[static_cast<size_t>(best)] - cum)) best = e;
    ends.push_back(best);
    prev = best;
  }
  ends.push_back(spec.n_layer);
  return plan_from_ends(bytes, spec, ends);
}

PipelinePlan plan_from_counts(const ModelBytes& bytes, const ModelSpec& spec, const std::vector<int64_t>& counts,
                              size_t n_ranks) {
  check_ranks(spec, n_ranks);
  if (counts.size() != n_ranks)
    throw Error("--layer-split gives " + std::to_string(counts.size()) + " layer counts for " +
                std::to_string(n_ranks) + " ranks: give one count per rank");
  std::vector<int64_t> ends;
  int64_t sum = 0;
  for (int64_t c : counts) {
    if (c < 1) throw Error("--layer-split: every rank needs at least one layer");
    sum += c;
    if (sum > spec.n_layer) break;
    ends.push_back(sum);
  }
  if (sum != spec.n_layer)
    throw Error("--layer-split counts add up to " + std::to_string(sum) + " layers; the model has " +
                std::to_string(spec.n_layer));
  return plan_from_ends(bytes, spec, ends);
}

std::vector<int64_t> parse_layer_split(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t v = 0;
    bool ok = !part.empty() && part.size() <= 9;
    for (char c : part) {
      ok &= c >= '0' && c <= '9';
      v = v * 10 + (c - '0');
    }
    if (!ok) throw Error("--layer-split needs whole numbers separated by commas (e.g. 20,22,19), not '" + text + "'");
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string describe_plan(const PipelinePlan& plan) {
  std::string out = "rank  layers          count  weights (MiB)  KV f16 per 1k positions (MiB)  holds\n";
  char line[200];
  for (size_t r = 0; r < plan.stages.size(); ++r) {
    const StageRange& s = plan.stages[r];
    std::snprintf(line, sizeof line, "%4zu  [%5lld, %5lld)  %5lld  %13.1f  %29.2f  %s\n", r,
                  static_cast<long long>(s.first), static_cast<long long>(s.end),
                  static_cast<long long>(s.end - s.first), static_cast<double>(plan.weight_bytes[r]) / (1 << 20),
                  static_cast<double>(plan.kv_bytes_per_position[r]) * 1000.0 / (1 << 20),
                  s.head ? "embeddings, output head, tokenizer, sampling" : "layers");
    out += line;
  }
  return out;
}

}  // namespace volga
