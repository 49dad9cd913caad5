// Subcommands of the `volga` executable. Each registers its options on the
// CLI11 app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/mpi_pipeline.h"
#include "sampling/sampler.h"
#include "tensor/dtype.h"

namespace volga::cli {

using Command = std::function<int()>;

Command add_run(CLI::App& app);
Command add_info(CLI::App& app);
Command add_logits(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_detokenize(CLI::App& app);
Command add_template(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_quantize(CLI::App& app);
Command add_perplexity(CLI::App& app);
Command add_imatrix(CLI::App& app);
Command add_embed(CLI::App& app);
Command add_index(CLI::App& app);

// --var KEY=JSON assignments as one JSON object (throws volga::Error).
nlohmann::ordered_json parse_var_assignments(const std::vector<std::string>& vars);

// Sampling flags shared by run, chat and bench; finish_... seeds and validates.
void add_sampling_options(CLI::App* cmd, SamplingParams& params, int64_t& seed);
void finish_sampling_options(SamplingParams& params, int64_t seed);

// --grammar FILE / --json-schema FILE (run and chat); load_... returns the
// compiled grammar or null, and throws volga::Error naming the file.
void add_grammar_options(CLI::App* cmd, std::string& grammar_file, std::string& schema_file);
std::shared_ptr<const Grammar> load_grammar_option(const std::string& grammar_file, const std::string& schema_file);

// The model to load: `given` when not empty, else the demo model that ships in
// the repository (models/volga-demo-q8_0.gguf, found beside the executable's
// source tree, in ../share/volga/models, or via $VOLGA_DEMO_MODEL). Throws
// volga::Error when no model is given and the demo model cannot be found.
std::string resolve_model(const std::string& given);
inline const char* kModelHelp = "GGUF model file (default: the demo model in models/)";

// KV cache flags: --cache-type (both), --cache-type-k, --cache-type-v
// (llama.cpp's spellings) and, with `memory`, --kv-memory SIZE. The default
// type is flags.type as given (f16 unless the command sets another).
struct KvFlags {
  std::string type = "f16", type_k, type_v, memory;
};
void add_kv_options(CLI::App* cmd, KvFlags& flags, bool memory);
// The key and value types chosen (throws volga::Error on an unsupported name).
std::pair<DType, DType> kv_types(const KvFlags& flags);
// Bytes of --kv-memory, 0 when not given (throws volga::Error on a bad size).
int64_t kv_memory_bytes(const KvFlags& flags);

// Thread count for --threads: 0 (not given) means all hardware threads.
int resolve_threads(int requested);
// -t,--threads N: at least 1 and at most 4x the hardware threads; `threads`
// stays 0 when the option is not given.
CLI::Option* add_threads_option(CLI::App* cmd, int& threads);
// -c,--ctx-size N (the one spelling every command uses): at least 1 token.
CLI::Option* add_ctx_size_option(CLI::App* cmd, int& ctx_size, const std::string& help);

// --mpi and --layer-split (run, bench, serve): see docs/MULTINODE.md.
void add_mpi_options(CLI::App* cmd, MpiFlags& flags);
// Ranks > 0 of an MPI job: open the model and run this rank's pipeline
// stage until rank 0 ends the job; returns the exit code.
int run_pipeline_stage(MpiLaunch& mpi, const std::string& model, int threads);

}  // namespace volga::cli
