// volga-synth: writes synthetic GGUF models for tests and benchmarks.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "synth_model.h"
#include "util/error.h"

int main(int argc, char** argv) {
  volga::synth::SynthOptions o;
  CLI::App app{"volga-synth: write a synthetic GGUF model (real architecture and shapes, seeded random weights)"};
  app.add_option("-o,--output", o.output, "Output .gguf path")->required();
  app.add_option("--arch", o.arch, "Architecture: llama, qwen2, qwen3, qwen3moe, deepseek2, qwen35, qwen35moe, bert")->default_val("qwen3");
  app.add_option("--shape", o.shape, volga::synth::shape_presets_help())->default_val("tiny");
  app.add_option("--type", o.type, "Weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k q4_k_m "
                 "iq4_nl iq4_xs iq3_s iq3_xxs iq2_s iq2_xs iq2_xxs iq1_m iq1_s")->default_val("f32");
  app.add_option("--tokenizer-json", o.tokenizer_json, "Take the vocabulary from this Hugging Face tokenizer.json (tokenizer_config.json beside it is read too)");
  app.add_option("--vocab-gguf", o.vocab_gguf, "bert: take the vocabulary (WordPiece, unigram, BPE) from this GGUF");
  app.add_option("--pooling", o.pooling, "Write <arch>.pooling_type: none, mean, cls, last (bert default cls; qwen3 last = Qwen3-Embedding)");
  app.add_flag("--rerank", o.rerank, "bert: add a classification head (cls, cls.output) and pooling rank, as bge-reranker");
  app.add_flag("--vocab-only", o.vocab_only, "Write only the vocabulary of --tokenizer-json (BPE, WordPiece or Unigram), as llama.cpp's converter would, no weights");
  app.add_option("--vocab-size", o.vocab_size, "Size of the built-in byte-level vocabulary (default 512)");
  app.add_option("--n-embd", o.n_embd, "Override the embedding size");
  app.add_option("--n-layer", o.n_layer, "Override the layer count");
  app.add_option("--n-head", o.n_head, "Override the attention head count");
  app.add_option("--n-head-kv", o.n_head_kv, "Override the key/value head count");
  app.add_option("--head-dim", o.head_dim, "Override the head size");
  app.add_option("--n-ff", o.n_ff, "Override the feed-forward size");
  app.add_option("--n-expert", o.n_expert, "Override the number of experts (qwen3moe, deepseek2)");
  app.add_option("--n-expert-used", o.n_expert_used, "Override the experts used per token (qwen3moe, deepseek2)");
  app.add_option("--n-ff-expert", o.n_ff_expert, "Override the feed-forward size of each expert (qwen3moe, deepseek2)");
  app.add_option("--q-lora-rank", o.q_lora_rank, "deepseek2: query compression rank (0: plain attn_q, as lite models)");
  app.add_option("--kv-lora-rank", o.kv_lora_rank, "deepseek2: key/value latent size");
  app.add_option("--rope-dim", o.rope_dim, "deepseek2: rotated dimensions per head (--head-dim is the rest of q/k)");
  app.add_option("--v-head-dim", o.v_head_dim, "deepseek2: value size per head");
  app.add_option("--n-expert-shared", o.n_expert_shared, "deepseek2: shared experts");
  app.add_option("--n-dense-lead", o.n_dense_lead, "deepseek2: leading layers with a dense feed-forward");
  app.add_option("--n-expert-groups", o.n_expert_groups, "deepseek2: expert groups for group-limited routing");
  app.add_option("--n-group-used", o.n_group_used, "deepseek2: groups kept per token");
  app.add_option("--gating", o.gating, "deepseek2: router gating, softmax or sigmoid (sigmoid adds exp_probs_b)");
  app.add_option("--expert-scale", o.expert_scale, "deepseek2: expert_weights_scale");
  app.add_option("--expert-norm", o.expert_norm, "deepseek2: expert_weights_norm (1 or 0)");
  app.add_flag("--fused-gate-up", o.fused_gate_up,
               "MoE: write each layer's expert gate and up matrices stacked in one ffn_gate_up_exps, as newer converters do");
  app.add_flag("--legacy-kv-b", o.legacy_kv_b, "deepseek2: write one attn_kv_b per layer, as older converters did");
  app.add_option("--yarn", o.yarn_factor, "YaRN rope scaling factor (> 1); original context = ctx / factor");
  app.add_option("--yarn-mscale-all-dim", o.yarn_mscale_all_dim, "deepseek2 YaRN: mscale_all_dim (default 1)");
  app.add_option("--ctx", o.n_ctx, "Override the trained context length");
  app.add_option("--tied", o.tied, "1: output shares the token embedding; 0: separate output.weight");
  app.add_flag("--llama3-rope", o.llama3_rope, "Add llama3 rope scaling frequency factors (rope_freqs.weight)");
  app.add_option("--seed", o.seed, "Random seed")->default_val(42);
  app.add_flag("-q,--quiet", o.quiet, "Print nothing on success");
  CLI11_PARSE(app, argc, argv);
  try {
    volga::synth::write_synthetic_model(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "volga-synth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
