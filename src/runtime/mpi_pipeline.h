// Pipeline parallelism over MPI: one model split by layers across the ranks
// of an mpirun job (docs/MULTINODE.md).
//
// Rank 0 holds the embeddings, its layers and the output head, and runs the
// command (tokenizer, scheduler, HTTP, sampling): its Model's forward() embeds
// the batch, runs its layers, sends the hidden states (f32, exact) with the
// batch and its KV block tables to rank 1, and so on; the last rank sends the
// final hidden states of the tokens that want logits back to rank 0, which
// applies the output head. Those are n_embd floats per row where logits would
// be n_vocab (e.g. 28 KiB instead of 505 KiB for DeepSeek-V3), and sampling
// (grammars, penalties, seeds) stays with the scheduler.
//
// The KV cache: each rank keeps the rows of its own layers only, in a pool
// with the same block numbering as rank 0's, which decides the block tables
// (and prefix sharing) and sends them with every batch (KvCache::mirror_*).
//
// Every kernel computes a token's row the same way whatever the batch, so the
// tokens are bit-identical to a single-process run for any split.
#pragma once

#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/mpi_comm.h"

namespace volga {

class GgufFile;
class ThreadPool;

struct MpiFlags {
  bool forced = false;      // --mpi: start MPI even without a launcher's environment
  std::string layer_split;  // --layer-split 20,22,19 (empty: in proportion to each rank's memory)
  std::string hidden = "f32";  // --mpi-hidden: f32 (exact), bf16, f16 on the wire
};

class MpiLaunch {
 public:
  // Starts MPI when the process was launched by mpirun (or flags.forced).
  // Throws volga::Error from MpiComm::start.
  explicit MpiLaunch(const MpiFlags& flags);
  // Whether this process is a later pipeline stage (rank > 0): it runs
  // serve_stage() instead of the command.
  bool is_worker() const { return comm_ && comm_->rank() > 0; }
  // Whether the model is split across several ranks.
  bool pipelined() const { return comm_ && comm_->size() > 1; }
  // The launcher is ending the job (a rank died, or mpirun was stopped):
  // rank 0's waits for other ranks end with UnavailableError (the server
  // answers 503) instead of waiting for ranks that are gone. Any thread.
  void end_job() {
    if (comm_) comm_->end_job();
  }
  // Rank 0 or a single process: the model to run (a pipeline when the job
  // has several ranks, else load_model()). A collective call with the
  // workers' serve_stage().
  std::unique_ptr<Model> load(const GgufFile& file, ThreadPool& pool);
  // Ranks > 0: loads this rank's layers and runs forward passes for rank 0
  // until it ends the job. Returns the exit code; errors end the whole job.
  int serve_stage(const GgufFile& file, ThreadPool& pool);

 private:
  MpiFlags flags_;
  std::shared_ptr<MpiComm> comm_;
};

}  // namespace volga
