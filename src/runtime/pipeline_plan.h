// Pipeline plan — which contiguous layers each MPI rank holds, and what that
// costs each rank in memory. Pure arithmetic over the file's tensor table (no
// MPI, no tensor data read): `volga info --mpi-plan N` prints it before
// anyone launches, and mpirun launches use it to split the model.
//
// Rank 0 holds the token embedding, the final norm and the output matrix
// beside its layers (it runs the tokenizer, the scheduler and sampling); the
// other ranks hold layers only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace volga {

// Bytes of each decoder layer's tensors ("blk.N.*") and of all the others
// (embedding, output head, norms).
struct ModelBytes {
  std::vector<int64_t> layer;
  int64_t other = 0;
};
ModelBytes model_bytes(const GgufFile& file, const ModelSpec& spec);

struct PipelinePlan {
  std::vector<StageRange> stages;   // one per rank, in rank order; stages[0].head only
  std::vector<int64_t> weight_bytes;  // per rank: its tensors
  std::vector<int64_t> kv_bytes_per_position;  // per rank: its layers' cache rows (f16 keys and values)
  int64_t layers(size_t rank) const { return stages[rank].end - stages[rank].first; }
};

// Splits the layers over capacity.size() ranks so that each rank's bytes are
// as close as the layer boundaries allow to its share of the total in
// proportion to its capacity (e.g. its available memory); every rank gets at
// least one layer. Throws volga::Error when there are more ranks than layers
// or a capacity is not positive.
PipelinePlan plan_by_capacity(const ModelBytes& bytes, const ModelSpec& spec, const std::vector<double>& capacity);

// The plan for explicit layer counts per rank (--layer-split 20,22,19).
// Throws volga::Error unless there is one count per rank, each at least 1,
// summing to the model's layers.
PipelinePlan plan_from_counts(const ModelBytes& bytes, const ModelSpec& spec, const std::vector<int64_t>& counts,
                              size_t n_ranks);

// "20,22,19" -> {20, 22, 19}; throws volga::Error naming a bad entry.
std::vector<int64_t> parse_layer_split(const std::string& text);

// The plan as a table for people (one line per rank).
std::string describe_plan(const PipelinePlan& plan);

}  // namespace volga
