// --mpi / --layer-split, and what ranks > 0 of an MPI job run.
#include "cli/commands.h"
#include "format/gguf.h"
#include "util/thread_pool.h"

namespace volga::cli {

void add_mpi_options(CLI::App* cmd, MpiFlags& flags) {
  cmd->add_flag("--mpi", flags.forced,
                "Split the model by layers across the ranks of an MPI job (automatic under mpirun; see docs/MULTINODE.md)");
  cmd->add_option("--layer-split", flags.layer_split,
                  "Layers per MPI rank, e.g. 20,22,19 (default: in proportion to each rank's available memory)");
  cmd->add_option("--mpi-hidden", flags.hidden,
                  "Hidden states between MPI ranks as f32 (exact, the default), bf16 or f16 (half the bytes, not bit-exact)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
}

int run_pipeline_stage(MpiLaunch& mpi, const std::string& model, int threads) {
  auto file = GgufFile::open(resolve_model(model));
  ThreadPool pool(resolve_threads(threads));
  return mpi.serve_stage(*file, pool);
}

}  // namespace volga::cli
