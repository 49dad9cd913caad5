// volga info MODEL: architecture, hyper-parameters, tensor types, size, template.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "chat/chat_format.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "kernels/dispatch.h"
#include "tokenizer/tokenizer.h"
#include "model/arch.h"
#include "model/model.h"
#include "runtime/pipeline_plan.h"
#include "util/cpu_features.h"
#include "util/error.h"

namespace volga::cli {

namespace {
std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}
}  // namespace

Command add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, hyper-parameters, tensor types, size and chat template");
  cmd->add_option("model", *path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--metadata", *all, "Also list every metadata key and every tensor");
  auto plan_ranks = std::make_shared<int>(0);
  auto split = std::make_shared<std::string>();
  cmd->add_option("--mpi-plan", *plan_ranks,
                  "Print how N MPI ranks of equal memory would split the model (layers, weights and KV cache per rank)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--layer-split", *split, "With --mpi-plan: layers per rank, e.g. 20,22,19")->needs("--mpi-plan");
  return [path, all, plan_ranks, split]() -> int {
    auto f = GgufFile::open(*path);
    if (*plan_ranks > 0) {
      const ModelSpec s = read_model_spec(*f);
      if (!architecture_splits(s)) throw Error(std::string("'") + s.arch_name() + "' models cannot be split across MPI ranks yet");
      const ModelBytes bytes = model_bytes(*f, s);
      const size_t n = static_cast<size_t>(*plan_ranks);
      const PipelinePlan plan = split->empty() ? plan_by_capacity(bytes, s, std::vector<double>(n, 1.0))
                                               : plan_from_counts(bytes, s, parse_layer_split(*split), n);
      std::printf("MPI pipeline plan for %s: %zu ranks, %lld layers, %s%s\n%s", path->c_str(), n,
                  static_cast<long long>(s.n_layer), split->empty() ? "equal memory per rank" : "--layer-split ",
                  split->c_str(), describe_plan(plan).c_str());
      std::printf("between ranks per token: %lld bytes of hidden state (f32) each hop; the last rank returns it to rank 0 "
                  "for tokens that want logits\n",
                  static_cast<long long>(s.n_embd * 4));
      return 0;
    }
    std::printf("file:          %s\n", path->c_str());
    std::printf("format:        GGUF v%u, %zu tensors, %zu metadata keys, alignment %llu\n", f->version(),
                f->tensors().size(), f->metadata().size(), static_cast<unsigned long long>(f->alignment()));
    std::printf("size:          %s\n", human_bytes(static_cast<double>(f->file_size())).c_str());
    std::printf("kernels:       %s (this CPU: %s; VOLGA_ISA=ref|avx2|avx512 chooses)\n", kernels::active_kernels().name,
                cpu_features().describe().c_str());
    std::string arch = f->get_string_opt("general.architecture").value_or("(none)");
    std::printf("architecture:  %s\n", arch.c_str());
    if (auto name = f->get_string_opt("general.name")) std::printf("name:          %s\n", name->c_str());
    try {
      ModelSpec s = read_model_spec(*f);
      std::printf("vocabulary:    %lld\n", static_cast<long long>(s.n_vocab));
      std::printf("layers:        %lld\n", static_cast<long long>(s.n_layer));
      std::printf("embedding:     %lld\n", static_cast<long long>(s.n_embd));
      if (s.n_expert > 0) {
        std::printf("experts:       %lld, %lld used per token, feed-forward %lld each\n",
                    static_cast<long long>(s.n_expert), static_cast<long long>(s.n_expert_used),
                    static_cast<long long>(s.n_ff_expert));
        if (s.is_mla()) {  // DeepSeek routing
          std::printf("routing:       %s gating%s, %s, scale %g%s\n",
                      s.expert_gating == ExpertGating::Sigmoid ? "sigmoid" : "softmax",
                      s.n_expert_groups > 1 ? (", " + std::to_string(s.n_group_used) + " of " +
                                               std::to_string(s.n_expert_groups) + " groups").c_str() : "",
                      s.expert_weights_norm ? "weights normalised" : "weights not normalised",
                      s.expert_weights_scale != 0 ? s.expert_weights_scale : 1.0f,
                      s.n_expert_shared > 0 ? (", " + std::to_string(s.n_expert_shared) + " shared").c_str() : "");
          std::printf("dense layers:  %lld leading, feed-forward %lld\n", static_cast<long long>(s.n_layer_dense_lead),
                      static_cast<long long>(s.n_ff));
        }
      } else {
        std::printf("feed-forward:  %lld\n", static_cast<long long>(s.n_ff));
      }
      if (s.is_mla())
        std::printf("attention:     MLA, %lld heads, q/k %lld (%lld rope) / v %lld per head, q rank %lld, kv rank %lld%s\n",
                    static_cast<long long>(s.n_head), static_cast<long long>(s.head_dim_k_mla),
                    static_cast<long long>(s.n_rot), static_cast<long long>(s.head_dim_v_mla),
                    static_cast<long long>(s.n_lora_q), static_cast<long long>(s.n_lora_kv),
                    s.mla_split_kv_b ? "" : " (legacy attn_kv_b)");
      else
        std::printf("heads:         %lld (kv %lld), head size k %lld / v %lld\n", static_cast<long long>(s.n_head),
                    static_cast<long long>(s.n_head_kv), static_cast<long long>(s.head_dim_k),
                    static_cast<long long>(s.head_dim_v));
      if (s.is_hybrid())
        std::printf("linear attn:   Gated DeltaNet in %lld of %lld layers (full attention every %lld), %lld key / %lld "
                    "value heads of %lld, conv %lld; state %s per sequence\n",
                    static_cast<long long>(s.n_layer - s.n_kv_layer()), static_cast<long long>(s.n_layer),
                    static_cast<long long>(s.full_attn_interval), static_cast<long long>(s.ssm_n_group),
                    static_cast<long long>(s.ssm_dt_rank), static_cast<long long>(s.ssm_d_state),
                    static_cast<long long>(s.ssm_d_conv),
                    human_bytes(static_cast<double>(s.recurrent_state_floats()) * 4).c_str());
      const int64_t kv_floats = (s.kv_key_width() + s.kv_value_width()) * s.n_kv_layer();
      std::printf("kv cache:      %lld floats (%s) per token%s\n", static_cast<long long>(kv_floats),
                  human_bytes(static_cast<double>(kv_floats) * 4).c_str(),
                  s.is_mla() ? ", latent + rope key only" : "");
      std::printf("context:       %lld (trained)\n", static_cast<long long>(s.n_ctx_train));
      if (s.traits().encoder) {
        std::printf("encoder:       bidirectional attention, learned positions, LayerNorm epsilon %g\n", s.norm_eps);
      } else {
        std::printf("rope:          %s, %lld dims, base %g%s", s.rope_style == RopeStyle::Neox ? "neox" : "normal",
                    static_cast<long long>(s.n_rot), s.rope_freq_base,
                    f->find_tensor("rope_freqs.weight") ? ", llama3 frequency factors" : "");
        if (s.rope_ext_factor != 0)
          std::printf(", YaRN x%g from %lld (attention scale %g)", 1.0 / s.rope_freq_scale,
                      static_cast<long long>(s.rope_n_ctx_orig), s.attn_scale);
        else if (s.rope_freq_scale != 1.0f)
          std::printf(", linear x%g", 1.0 / s.rope_freq_scale);
        std::printf("\n");
        std::printf("rms epsilon:   %g\n", s.rms_eps);
      }
      if (s.pooling != Pooling::Unspecified)
        std::printf("pooling:       %s%s\n", pooling_name(s.pooling),
                    s.n_cls_out > 0 ? (", classification head of " + std::to_string(s.n_cls_out) + " outputs").c_str() : "");
    } catch (const Error& e) {
      std::printf("(cannot run: %s)\n", e.what());
    }
    std::map<std::string, std::pair<int, uint64_t>> per_type;
    uint64_t params = 0;
    for (const auto& t : f->tensors()) {
      auto& e = per_type[dtype_name(t.type)];
      ++e.first;
      e.second += t.n_bytes;
      params += static_cast<uint64_t>(t.n_elements());
    }
    std::printf("parameters:    %.2f M\n", static_cast<double>(params) / 1e6);
    std::printf("tensor types: ");
    for (const auto& [name, e] : per_type)
      std::printf(" %s x%d (%s)", name.c_str(), e.first, human_bytes(static_cast<double>(e.second)).c_str());
    std::printf("\n");
    if (auto tm = f->get_string_opt("tokenizer.ggml.model")) {
      std::printf("tokenizer:     %s", tm->c_str());
      if (auto pre = f->get_string_opt("tokenizer.ggml.pre")) std::printf(" (pre-tokenizer %s)", pre->c_str());
      if (const GgufValue* v = f->find("tokenizer.ggml.tokens")) std::printf(", %zu tokens", v->array.size());
      std::printf(", %s\n", Tokenizer::kind_name(*tm).c_str());
    }
    if (auto tmpl = f->get_string_opt("tokenizer.chat_template")) {
      ChatFormat fmt = detect_chat_format(*tmpl);
      std::printf("chat format: tool calls %s, reasoning %s\n", fmt.tools == ToolCallStyle::None ? "none" : fmt.name.c_str(),
                  fmt.reasoning ? (fmt.think_open + "..." + fmt.think_close).c_str() : "none");
      std::printf("chat template:\n%s\n", tmpl->c_str());
    }
    else
      std::printf("chat template: (none)\n");
    if (*all) {
      std::printf("\nmetadata:\n");
      for (const auto& [k, v] : f->metadata()) std::printf("  %-48s %s\n", k.c_str(), v.to_display_string().c_str());
      std::printf("\ntensors:\n");
      for (const auto& t : f->tensors())
        std::printf("  %-40s %-6s %s\n", t.name.c_str(), dtype_name(t.type), t.shape_string().c_str());
    }
    return 0;
  };
}

}  // namespace volga::cli
