// volga bench MODEL: prompt-processing (prefill) and generation (decode)
// tokens per second, in the style of llama-bench, with the fraction of this
// machine's limits reached: read bandwidth for decode (weights streamed per
// token), peak arithmetic for prefill. The limits are measured by the bench
// itself, on the same threads. With -d N both tests run after N tokens are
// already in the KV cache (like llama-bench's -d), so attention over a long
// context shows.
#include <tuple>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>

#include "cli/commands.h"
#include "format/gguf.h"
#include "kernels/dispatch.h"
#include "model/model.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/cpu_features.h"
#include "util/error.h"

namespace volga::cli {

namespace {
struct BenchOptions {
  std::string model;
  int n_prompt = 512;
  int n_gen = 128;
  int depth = 0;
  int threads = 0;
  int reps = 3;
  bool json = false;
  bool moe_stats = false;
  std::string isa;
  std::string matmul;
  std::string grammar_file, schema_file;
  KvFlags kv;
  MpiFlags mpi;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return s;
}

// Read bandwidth: every thread sums its share of a buffer far larger than
// the caches; best of several passes.
double measure_read_bandwidth(ThreadPool& pool) {
  const size_t n = size_t(256) << 20 >> 3;  // 256 MiB of uint64
  std::vector<uint64_t> buf(n);
  pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
  }, 4096);
  double best = 0;
  std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8);
  for (int pass = 0; pass < 5; ++pass) {
    auto t0 = Clock::now();
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int tid) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const uint64_t* p = buf.data();
      int64_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      for (; i < e; ++i) s0 += p[i];
      sums[static_cast<size_t>(tid) * 8] += s0 + s1 + s2 + s3;
    }, 1 << 16);
    best = std::max(best, static_cast<double>(n * 8) / seconds_since(t0));
  }
  return best;
}

// Peak arithmetic: the probe loop on every thread for a fixed iteration count.
double measure_peak(ThreadPool& pool, double (*probe)(int64_t)) {
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<double> ops(static_cast<size_t>(pool.size()));
    auto t0 = Clock::now();
    pool.parallel_for(pool.size(), [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) ops[static_cast<size_t>(i)] = probe(20'000'000);
    });
    best = std::max(best, std::accumulate(ops.begin(), ops.end(), 0.0) / seconds_since(t0));
  }
  return best;
}

std::string human(double v, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s", v / 1e9, unit);
  return buf;
}
// Decode with sampling, with and without a grammar, on the model's own
// logits (each sampled token is fed back): tokens/s of each, so the cost of
// the grammar mask shows as the difference. A finished grammar starts over.
struct GrammarBench {
  std::vector<double> plain, constrained;          // tokens/s
  std::vector<double> plain_sample, grammar_sample;  // seconds per token spent sampling
  int64_t completed = 0;  // grammar sentences finished during the runs
};

GrammarBench bench_grammar(Model& model, const GgufFile& file, std::shared_ptr<const Grammar> grammar, int n_gen, int reps) {
  auto tok = Tokenizer::from_gguf(file);
  auto trie = std::make_shared<TokenTrie>(*tok);
  KvCache cache(model.spec(), 1, n_gen + 2);
  GrammarBench out;
  auto run = [&](bool constrained, uint64_t seed) {
    SamplingParams sp;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = seed;
    if (constrained) sp.grammar = grammar, sp.vocab = trie;
    auto sampler = std::make_unique<Sampler>(sp);
    cache.truncate(0, 0);
    Batch batch;
    int32_t next = tok->bos_id() >= 0 ? tok->bos_id() : 0;
    double sampling = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < n_gen; ++i) {
      batch.clear();
      batch.add(next, i, 0, true);
      Logits logits = model.forward(batch, cache);
      auto ts = Clock::now();
      next = sampler->sample(logits.row(0), logits.n_vocab);
      sampler->accept_output(next);
      if (constrained && (sampler->grammar_finished() || tok->is_end_of_generation(next))) {
        ++out.completed;
        sampler = std::make_unique<Sampler>(sp);
      }
      sampling += seconds_since(ts);
    }
    (constrained ? out.grammar_sample : out.plain_sample).push_back(sampling / n_gen);
    return n_gen / seconds_since(t0);
  };
  for (int rep = 0; rep < reps; ++rep) {  // alternate, so drifts of the host hit both alike
    out.plain.push_back(run(false, static_cast<uint64_t>(rep)));
    out.constrained.push_back(run(true, static_cast<uint64_t>(rep)));
  }
  return out;
}

// Fills sequence 0 of the cache with random tokens up to `depth` (not
// timed), from where it ends now, in chunks of 512 so the activations stay small.
void fill_cache(Model& model, KvCache& cache, int depth, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.spec().n_vocab - 1));
  Batch batch;
  for (int pos = cache.length(0); pos < depth;) {
    batch.clear();
    for (int i = 0; i < 512 && pos < depth; ++i, ++pos) batch.add(tok(rng), pos, 0, pos + 1 == depth);
    model.forward(batch, cache);
  }
}

// Where the timed passes went: phase seconds against the total.
struct PhaseSplit {
  PhaseTimes t;
  double total = 0;
  double other() const { return std::max(0.0, total - t.experts - t.attention - t.routing); }
};

std::string phase_line(const PhaseSplit& p) {
  if (p.total <= 0) return "";
  char buf[160];
  std::snprintf(buf, sizeof buf, "experts %.1f%%, attention %.1f%%, routing %.1f%%, other %.1f%% (of %.2f s)",
                100 * p.t.experts / p.total, 100 * p.t.attention / p.total, 100 * p.t.routing / p.total,
                100 * p.other() / p.total, p.total);
  return buf;
}

nlohmann::json phase_json(const PhaseSplit& p) {
  return {{"seconds", p.total},          {"experts_s", p.t.experts}, {"attention_s", p.t.attention},
          {"routing_s", p.t.routing},    {"other_s", p.other()}};
}

// "pp512" or "pp512 @ d4096", as llama-bench labels its tests.
std::string test_label(const char* kind, int n, int depth) {
  std::string label = kind + std::to_string(n);
  if (depth > 0) label += " @ d" + std::to_string(depth);
  return label;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure prefill and decode tokens/s, and how close they come to this machine's limits");
  cmd->add_option("model", o->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens processed in one batch (prefill test)")->default_val(512)->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-n,--n-gen", o->n_gen, "Tokens generated one at a time (decode test)")->default_val(128)->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-d,--depth", o->depth, "Tokens already in the KV cache before each test (like llama-bench -d)")
      ->default_val(0)->check(CLI::Range(0, 1 << 20));
  add_threads_option(cmd, o->threads);
  cmd->add_option("-r,--reps", o->reps, "Repetitions; the median is reported with min..max")->default_val(3)->check(CLI::Range(1, 100));
  cmd->add_option("--isa", o->isa, "Kernel set: ref, avx2, avx512 (default: the best this CPU runs; same as VOLGA_ISA)");
  cmd->add_option("--matmul", o->matmul,
                  "Products with quantized weights: int8 (activations rounded to 8 bits, integer dot products; "
                  "the default) or float (weights dequantized to float); same as VOLGA_MATMUL")
      ->check(CLI::IsMember({"int8", "float"}));
  add_kv_options(cmd, o->kv, false);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->add_flag("--moe-stats", o->moe_stats,
                "Also print where the timed passes spent their time: routed and shared experts, attention over the "
                "KV cache, expert routing, and everything else");
  cmd->add_option("--grammar", o->grammar_file, "Also measure sampled decode under this GBNF grammar (vs. unconstrained)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--json-schema", o->schema_file, "Also measure sampled decode under this JSON Schema (vs. unconstrained)")
      ->check(CLI::ExistingFile)
      ->excludes("--grammar");
  add_mpi_options(cmd, o->mpi);
  return [o]() -> int {
    if (!o->isa.empty()) setenv("VOLGA_ISA", o->isa.c_str(), 1);
    if (!o->matmul.empty()) setenv("VOLGA_MATMUL", o->matmul.c_str(), 1);
    MpiLaunch mpi(o->mpi);
    if (mpi.is_worker()) return run_pipeline_stage(mpi, o->model, o->threads);
    const char* matmul_mode = kernels::int8_matmul_enabled() ? "int8" : "float";
    const kernels::KernelTable& kt = kernels::active_kernels();
    if (o->n_prompt == 0 && o->n_gen == 0) throw Error("nothing to measure: -p and -n are both 0");
    auto file = GgufFile::open(o->model);
    ThreadPool pool(resolve_threads(o->threads));
    // The machine's limits are measured before the model is loaded: the read
    // probe's 256 MiB buffer goes back to the system before the weights' pages
    // are touched, so it does not add to the run's peak resident memory.
    const double bandwidth = measure_read_bandwidth(pool);
    const double fma_peak = measure_peak(pool, kt.fma_probe);
    const double int8_peak = kernels::isa_available(kernels::Isa::Avx512) ? measure_peak(pool, kernels::int8_probe) : 0;
    auto model = mpi.load(*file, pool);
    const ModelSpec& s = model->spec();

    // What one token costs: weight bytes streamed in decode, multiply-adds in
    // prefill. Of the routed experts (ffn_*_exps) a token uses n_expert_used.
    double weight_bytes = 0, matmul_params = 0;
    const bool tied = file->find_tensor("output.weight") == nullptr;
    for (const TensorInfo& t : file->tensors()) {
      bool embd = t.name == "token_embd.weight";
      if (embd && !tied) continue;  // only one row is read per token
      const double share = t.name.find("_exps.") != std::string::npos && s.n_expert > 0
                               ? static_cast<double>(s.n_expert_used) / static_cast<double>(s.n_expert) : 1.0;
      weight_bytes += static_cast<double>(t.n_bytes) * share;
      if (t.ne[1] > 1 && !(embd && tied) && t.name != "output.weight")
        matmul_params += static_cast<double>(t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]) * share;
    }

    const int ctx = std::max(16, o->depth + std::max(o->n_prompt, o->n_gen) + 1);
    KvCacheOptions ko;
    ko.n_ctx = ctx;
    std::tie(ko.type_k, ko.type_v) = kv_types(o->kv);
    KvCache cache(s, ko);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(s.n_vocab - 1));
    Batch batch;
    // Warm-up: page the weights in and size the buffers.
    batch.add(tok(rng), 0, 0, true);
    model->forward(batch, cache);
    cache.truncate(0, 0);
    fill_cache(*model, cache, o->depth, rng);  // once: every test starts from this depth

    std::vector<double> pp, tg;
    PhaseSplit pp_split, tg_split;  // filled with --moe-stats only
    // A hybrid model's recurrent state goes back only to a snapshot (at most
    // 32 positions before the depth after the first test): fill the rest again (not timed).
    auto back_to_depth = [&] {
      if (cache.truncate(0, o->depth) < o->depth) fill_cache(*model, cache, o->depth, rng);
    };
    for (int rep = 0; rep < o->reps; ++rep) {
      back_to_depth();
      if (o->n_prompt > 0) {
        batch.clear();
        for (int i = 0; i < o->n_prompt; ++i) batch.add(tok(rng), o->depth + i, 0, i + 1 == o->n_prompt);
        if (o->moe_stats) model->time_phases(&pp_split.t);
        auto t0 = Clock::now();
        model->forward(batch, cache);
        const double secs = seconds_since(t0);
        pp.push_back(o->n_prompt / secs);
        pp_split.total += secs;
      }
      back_to_depth();
      if (o->n_gen > 0) {
        if (o->moe_stats) model->time_phases(&tg_split.t);
        int pos = o->depth;
        auto t0 = Clock::now();
        for (int i = 0; i < o->n_gen; ++i) {
          batch.clear();
          batch.add(tok(rng), pos++, 0, true);
          model->forward(batch, cache);
        }
        const double secs = seconds_since(t0);
        tg.push_back(o->n_gen / secs);
        tg_split.total += secs;
      }
      model->time_phases(nullptr);
    }

    auto grammar = load_grammar_option(o->grammar_file, o->schema_file);
    GrammarBench gb;
    if (grammar && o->n_gen > 0) gb = bench_grammar(*model, *file, grammar, o->n_gen, o->reps);
    const bool with_grammar = !gb.constrained.empty();
    const Stats gp = with_grammar ? stats(gb.plain) : Stats{}, gc = with_grammar ? stats(gb.constrained) : Stats{};
    // The grammar's cost: extra sampling time per token, against the time of
    // one unconstrained decode step (robust to the host's noise, unlike the
    // difference of two tokens/s figures).
    const double extra_ms = with_grammar ? 1000 * (stats(gb.grammar_sample).median - stats(gb.plain_sample).median) : 0;
    const double overhead = with_grammar ? extra_ms / (1000 / gp.median) : 0;

    // Decode reads the weights and, at depth, the cached keys/values as well.
    const double kv_bytes = static_cast<double>(KvCache::block_bytes_for(s, cache.type_k(), cache.type_v())) /
                            KvCache::kBlockTokens * (o->depth + o->n_gen / 2.0);
    const double decode_limit = bandwidth / (weight_bytes + kv_bytes);
    // Prefill work per token: 2 flops per matrix weight, plus attention over
    // on average half the prompt (q.k and p.v).
    // MLA attends in the latent space: q.k over latent + rope dims, p.v over the latent.
    const int64_t att_k = s.is_mla() ? s.kv_key_width() : s.head_dim_k, att_v = s.is_mla() ? s.n_lora_kv : s.head_dim_v;
    const double attn_flops = 2.0 * static_cast<double>(s.n_layer * s.n_head * (att_k + att_v)) * (o->depth + o->n_prompt / 2.0);
    const double flops_per_token = 2.0 * matmul_params + attn_flops;

    Stats p = pp.empty() ? Stats{} : stats(pp), g = tg.empty() ? Stats{} : stats(tg);
    const double pp_flops = p.median * flops_per_token;
    std::string type = file->get_string_opt("general.file_type_name").value_or("");
    if (o->json) {
      nlohmann::json j;
      j["model"] = o->model;
      j["arch"] = s.arch_name();
      j["model_bytes"] = file->file_size();
      j["threads"] = pool.size();
      j["isa"] = kt.name;
      j["matmul"] = matmul_mode;
      j["kv_cache_type_k"] = dtype_name(cache.type_k());
      j["kv_cache_type_v"] = dtype_name(cache.type_v());
      j["n_prompt"] = o->n_prompt;
      j["n_gen"] = o->n_gen;
      j["depth"] = o->depth;
      j["reps"] = o->reps;
      j["prefill_tokens_per_s"] = p.median;
      j["prefill_tokens_per_s_min"] = p.min;
      j["prefill_tokens_per_s_max"] = p.max;
      j["decode_tokens_per_s"] = g.median;
      j["decode_tokens_per_s_min"] = g.min;
      j["decode_tokens_per_s_max"] = g.max;
      j["weight_bytes_per_token"] = weight_bytes;
      j["kv_cache_bytes_per_token"] = kv_bytes;
      j["read_bandwidth_bytes_per_s"] = bandwidth;
      j["decode_limit_tokens_per_s"] = decode_limit;
      j["decode_fraction_of_bandwidth"] = g.median / decode_limit;
      j["prefill_flops_per_s"] = pp_flops;
      j["peak_fp32_flops_per_s"] = fma_peak;
      j["prefill_fraction_of_fp32_peak"] = pp_flops / fma_peak;
      j["peak_int8_ops_per_s"] = int8_peak;
      if (int8_peak > 0) j["prefill_fraction_of_int8_peak"] = pp_flops / int8_peak;
      if (o->moe_stats) {
        if (!pp.empty()) j["prefill_phases"] = phase_json(pp_split);
        if (!tg.empty()) j["decode_phases"] = phase_json(tg_split);
      }
      if (with_grammar) {
        j["sampled_decode_tokens_per_s"] = gp.median;
        j["grammar_decode_tokens_per_s"] = gc.median;
        j["grammar_decode_tokens_per_s_min"] = gc.min;
        j["grammar_decode_tokens_per_s_max"] = gc.max;
        j["grammar_overhead_fraction"] = overhead;
        j["grammar_extra_ms_per_token"] = extra_ms;
        j["sampling_ms_per_token"] = 1000 * stats(gb.plain_sample).median;
        j["grammar_sampling_ms_per_token"] = 1000 * stats(gb.grammar_sample).median;
        j["grammar_sampling_fraction_of_step"] = stats(gb.grammar_sample).median * gc.median;
        j["grammar_sentences_completed"] = gb.completed;
      }
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("model: %s (%s, %.0f MiB%s%s), %d threads, kernels %s, matmul %s, KV cache %s, CPU: %s\n",
                o->model.c_str(), s.arch_name(), static_cast<double>(file->file_size()) / (1 << 20),
                type.empty() ? "" : ", ", type.c_str(), pool.size(), kt.name, matmul_mode,
                cache.type_k() == cache.type_v()
                    ? dtype_name(cache.type_k())
                    : (std::string(dtype_name(cache.type_k())) + "/" + dtype_name(cache.type_v())).c_str(),
                cpu_features().describe().c_str());
    std::printf("| test            | tokens/s (median) | min .. max        | of the machine's limit |\n");
    std::printf("|-----------------|-------------------|-------------------|------------------------|\n");
    if (!pp.empty())
      std::printf("| %-15s | %17.1f | %7.1f .. %7.1f | %4.1f%% of fp32 FMA peak%s |\n",
                  test_label("pp", o->n_prompt, o->depth).c_str(), p.median, p.min, p.max,
                  100 * pp_flops / fma_peak,
                  int8_peak > 0 ? (", " + std::to_string(static_cast<int>(std::lround(100 * pp_flops / int8_peak))) + "% of int8").c_str() : "");
    if (!tg.empty())
      std::printf("| %-15s | %17.1f | %7.1f .. %7.1f | %4.1f%% of bandwidth limit (%.1f tok/s) |\n",
                  test_label("tg", o->n_gen, o->depth).c_str(), g.median,
                  g.min, g.max, 100 * g.median / decode_limit, decode_limit);
    if (with_grammar) {
      std::printf("| tg%-4d sampled           | %17.1f | %7.1f .. %7.1f | sampling %.2f ms/token |\n", o->n_gen, gp.median,
                  gp.min, gp.max, 1000 * stats(gb.plain_sample).median);
      std::printf("| tg%-4d sampled + grammar | %17.1f | %7.1f .. %7.1f | sampling %.2f ms/token (%.1f%% of a step), "
                  "%+.2f ms vs unconstrained; %lld sentences |\n", o->n_gen, gc.median, gc.min, gc.max,
                  1000 * stats(gb.grammar_sample).median, 100 * stats(gb.grammar_sample).median * gc.median, extra_ms,
                  static_cast<long long>(gb.completed));
    }
    if (o->moe_stats) {
      if (!pp.empty())
        std::printf("time split, %s: %s\n", test_label("pp", o->n_prompt, o->depth).c_str(), phase_line(pp_split).c_str());
      if (!tg.empty())
        std::printf("time split, %s: %s\n", test_label("tg", o->n_gen, o->depth).c_str(), phase_line(tg_split).c_str());
    }
    std::printf("machine: read bandwidth %s, fp32 FMA peak %s", human(bandwidth, "GB/s").c_str(),
                human(fma_peak, "GFLOP/s").c_str());
    if (int8_peak > 0) std::printf(", int8 VNNI peak %s", human(int8_peak, "GOP/s").c_str());
    std::printf("; %.0f MB of weights%s per decoded token, %.2f GFLOP per prefill token\n", weight_bytes / 1e6,
                o->depth > 0 ? (" + " + std::to_string(std::lround(kv_bytes / 1e6)) + " MB of KV cache").c_str() : "",
                flops_per_token / 1e9);
    return 0;
  };
}

}  // namespace volga::cli
