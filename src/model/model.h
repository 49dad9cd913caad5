// Model — the small interface every architecture implements, and the loader
// that picks an implementation from `general.architecture`.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/phase_times.h"
#include "model/spec.h"
#include "util/thread_pool.h"

namespace volga {

class GgufFile;

// The part of a model one pipeline stage holds (runtime/mpi_pipeline.h):
// decoder layers [first, end) and, when `head` is set, the token embedding,
// final norm and output matrix. The default is the whole model.
struct StageRange {
  int64_t first = 0, end = -1;  // end -1: through the last layer
  bool head = true;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelSpec& spec() const = 0;

  // Runs one forward pass over `batch`, appending each token's keys/values to
  // its sequence in `cache`, and returns logits for tokens with want_logits.
  // Throws volga::Error on an invalid batch (bad token id, position gap,
  // sequence id out of range, context full). Not thread-safe: engine thread only.
  virtual Logits forward(const Batch& batch, KvCache& cache) = 0;

  // The last hidden state of every token of `batch` ([T][n_embd], batch
  // order), after the model's final norm: what embeddings are pooled from.
  // The batch holds whole sequences, each one run of tokens at positions
  // 0, 1, ... in order; decoders compute them in a private cache. A token's
  // state does not depend on the other sequences of the batch. Throws
  // volga::Error on a bad batch or an architecture without this output.
  virtual std::vector<float> token_states(const Batch& batch);

  // The classification head of a rank model (cross-encoder reranker) on n
  // pooled states [n][n_embd]: [n][n_cls_out] scores. Throws volga::Error
  // when the model has no such head.
  virtual std::vector<float> classify(const float* pooled, int64_t n);

  // forward() in pieces, for pipeline stages. embed(): the batch's token
  // embeddings x [T][n_embd] (needs the head). run_layers(): the stage's
  // layers on x in place; the caller has prepared the cache (prepare_batch)
  // and commits it afterwards. output(): final norm and output matrix for the
  // tokens that want logits (needs the head). forward() is exactly
  // prepare, embed, run_layers over every layer, commit, output. Throws
  // volga::Error for architectures that cannot be split.
  virtual void embed(const Batch& batch, std::vector<float>& x);
  virtual void run_layers(const Batch& batch, KvCache& cache, float* x);
  virtual Logits output(const Batch& batch, const float* x);

  // Forward passes in flight, for a model split across MPI ranks whose
  // stages work on different batches at the same time: submit() starts
  // forward(batch, cache) and may return before its logits exist (the cache
  // is prepared and committed at once, as forward() would); collect()
  // returns the logits of the oldest submitted pass. Passes in flight
  // together must hold different sequences. pipeline_depth() is how many
  // passes in flight keep every stage busy: 1 (the default) means submit()
  // computes at once and nothing overlaps. abandon() drops every pass in
  // flight (after an error). Engine thread only; throws as forward() does.
  virtual int pipeline_depth() const { return 1; }
  virtual void submit(const Batch& batch, KvCache& cache);
  virtual Logits collect();
  virtual void abandon() { submitted_.clear(); }

  // Accumulate the time of each phase of later forward passes into *times
  // (kept by the caller; nullptr: stop timing, the default).
  void time_phases(PhaseTimes* times) { phases_ = times; }

 protected:
  PhaseTimes* phases_ = nullptr;

 private:
  std::deque<Logits> submitted_;  // the default submit(): computed, not yet collected
};

// Checks the batch's token ids and reserves its cache blocks: what forward()
// does first (pipeline stages call it themselves). Throws volga::Error, or
// KvFullError when the cache has no block left.
void prepare_batch(const ModelSpec& spec, const Batch& batch, KvCache& cache);

// Architectures Volga can load.
const std::vector<std::string>& supported_architectures();

// Binds the weights of `file` (which must outlive the model) and returns the
// model. Throws volga::Error for an unknown architecture or a missing or
// misshapen tensor, naming it.
std::unique_ptr<Model> load_model(const GgufFile& file, ThreadPool& pool);

// Binds only the tensors of `range` (other layers' pages are never read) and
// returns a model whose run_layers() runs that range. Throws volga::Error for
// an architecture that cannot be split or a range outside the model.
std::unique_ptr<Model> load_model_stage(const GgufFile& file, ThreadPool& pool, const StageRange& range);
// Whether load_model_stage supports this architecture.
bool architecture_splits(const ModelSpec& spec);

}  // namespace volga
