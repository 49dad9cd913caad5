// KV cache flags shared by serve, run, chat and bench.
#include "cli/commands.h"
#include "runtime/kv_budget.h"
#include "util/error.h"

namespace volga::cli {

void add_kv_options(CLI::App* cmd, KvFlags& f, bool memory) {
  cmd->add_option("--cache-type", f.type,
                  "KV cache type for keys and values: f16, bf16, q8_0 (half of f16's memory, slightly less "
                  "exact) or f32")
      ->default_val(f.type);
  cmd->add_option("--cache-type-k", f.type_k, "KV cache type of the keys (overrides --cache-type)");
  cmd->add_option("--cache-type-v", f.type_v, "KV cache type of the values (overrides --cache-type)");
  if (memory)
    cmd->add_option("--kv-memory", f.memory,
                    "KV cache budget shared by all sequences, e.g. 8G or 512M (default: room for --parallel "
                    "full-context sequences, at most 70% of the free memory after the model)");
}

std::pair<DType, DType> kv_types(const KvFlags& f) {
  auto parse = [](const std::string& name, const char* flag) {
    DType t;
    try {
      t = parse_dtype(name);
    } catch (const Error&) {
      throw Error(std::string(flag) + " '" + name + "' is not a KV cache type (use f16, bf16, q8_0 or f32)");
    }
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16 && t != DType::Q8_0)
      throw Error(std::string(flag) + " '" + name + "' is not a KV cache type (use f16, bf16, q8_0 or f32)");
    return t;
  };
  const DType both = parse(f.type, "--cache-type");
  return {f.type_k.empty() ? both : parse(f.type_k, "--cache-type-k"),
          f.type_v.empty() ? both : parse(f.type_v, "--cache-type-v")};
}

int64_t kv_memory_bytes(const KvFlags& f) {
  if (f.memory.empty()) return 0;
  try {
    return parse_size(f.memory);
  } catch (const Error& e) {
    throw Error(std::string("--kv-memory: ") + e.what());
  }
}

}  // namespace volga::cli
