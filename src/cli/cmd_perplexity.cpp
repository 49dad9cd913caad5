// volga perplexity MODEL TEXT_FILE [--ctx N]: perplexity of a model over a file.
//
// Method (as llama.cpp's llama-perplexity, so figures are comparable): the
// tokenized file is cut into non-overlapping windows of N tokens; each window
// is evaluated from an empty cache and the second half of its tokens is
// scored, so every scored token sees at least N/2 tokens of context. A file
// shorter than one window is evaluated as a single window.
//
// --kl-divergence-base FILE saves the scored tokens' distributions of a base
// model (e.g. the F16 file); adding --kl-divergence compares another model
// (a quantization of it) against them: KL divergence per token, how often the
// most likely token is the same, and the perplexity ratio (cli/kl_divergence.h).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/kl_divergence.h"
#include "format/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga::cli {

namespace {

struct PplOptions {
  std::string model, file;
  int ctx = 512;
  int threads = 0;
  int max_windows = 0;
  bool json = false;
  bool quiet = false;
  std::string kld_base;
  bool kld = false;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Negative log-likelihood (natural log) of `target` under one row of logits.
double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  return std::log(sum) - static_cast<double>(logits[target] - mx);
}

void draw_progress(int done, int total, double ppl, double elapsed) {
  const int width = 30, filled = total > 0 ? done * width / total : width;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
  const double eta = done > 0 ? elapsed / done * (total - done) : 0;
  std::fprintf(stderr, "\r[%s] %d/%d windows  ppl %.4f  %.0fs left ", bar.c_str(), done, total, ppl, eta);
  std::fflush(stderr);
}

int run_perplexity(const PplOptions& o) {
  if (o.ctx < 2) throw Error("--ctx must be at least 2");
  auto file = GgufFile::open(o.model);
  auto tok = Tokenizer::from_gguf(*file);
  ThreadPool pool(resolve_threads(o.threads));
  auto model = load_model(*file, pool);
  const std::string text = read_text_file(o.file);
  std::vector<int32_t> tokens = tok->encode(text, false, false);
  const int n_ctx_train = static_cast<int>(std::min<int64_t>(model->spec().n_ctx_train, 1 << 30));
  int ctx = o.ctx;
  if (ctx > n_ctx_train) {
    std::fprintf(stderr, "volga: --ctx %d exceeds the model's trained context; using %d\n", ctx, n_ctx_train);
    ctx = n_ctx_train;
  }
  // With a BOS token the first position of each window holds it (as in llama.cpp).
  const bool bos = tok->add_bos() && tok->bos_id() >= 0;
  const int per_window = bos ? ctx - 1 : ctx;
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  if (n_tok < 2) throw Error("'" + o.file + "' has fewer than 2 tokens; nothing to score");
  int n_windows = static_cast<int>(n_tok / per_window);
  int window = per_window;
  if (n_windows == 0) {
    n_windows = 1;
    window = static_cast<int>(n_tok);
  }
  if (o.max_windows > 0) n_windows = std::min(n_windows, o.max_windows);
  const bool bar = !o.quiet && isatty(STDERR_FILENO);
  if (!o.quiet)
    std::fprintf(stderr, "volga perplexity: %lld tokens, %d windows of %d, scoring the second half of each\n",
                 static_cast<long long>(n_tok), n_windows, window + (bos ? 1 : 0));
  const int64_t n_vocab = model->spec().n_vocab;
  KvCache cache(model->spec(), 1, window + 1);
  double nll_sum = 0, nll_sq = 0;
  int64_t n_scored = 0;
  if (o.kld && o.kld_base.empty()) throw Error("--kl-divergence needs --kl-divergence-base FILE (made by a base run)");
  std::unique_ptr<KlDivergence> kld;
  if (!o.kld_base.empty())
    kld = std::make_unique<KlDivergence>(o.kld_base, o.kld, n_vocab, window + (bos ? 1 : 0), tokens);
  const auto t0 = std::chrono::steady_clock::now();
  for (int w = 0; w < n_windows; ++w) {
    cache.truncate(0, 0);
    std::vector<int32_t> ids;
    if (bos) ids.push_back(tok->bos_id());
    ids.insert(ids.end(), tokens.begin() + static_cast<int64_t>(w) * window,
               tokens.begin() + static_cast<int64_t>(w) * window + window);
    const int n = static_cast<int>(ids.size());
    const int first = std::max(1, n / 2);  // first scored position (predicted from position first-1)
    Batch b;
    for (int i = 0; i < n - 1; ++i) b.add(ids[static_cast<size_t>(i)], i, 0, i + 1 >= first);
    Logits l = model->forward(b, cache);
    for (int64_t r = 0; r < l.rows(); ++r) {
      const int pos = l.batch_index[static_cast<size_t>(r)];
      const double nll = token_nll(l.row(r), n_vocab, ids[static_cast<size_t>(pos + 1)]);
      if (kld) kld->add(l.row(r));
      nll_sum += nll;
      nll_sq += nll * nll;
      ++n_scored;
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (bar) draw_progress(w + 1, n_windows, std::exp(nll_sum / static_cast<double>(n_scored)), elapsed);
    else if (!o.quiet && (n_windows < 20 || (w + 1) % (n_windows / 10) == 0 || w + 1 == n_windows))
      std::fprintf(stderr, "  window %d/%d  ppl %.4f\n", w + 1, n_windows, std::exp(nll_sum / static_cast<double>(n_scored)));
  }
  if (bar) std::fprintf(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean = nll_sum / static_cast<double>(n_scored);
  const double var = std::max(0.0, nll_sq / static_cast<double>(n_scored) - mean * mean);
  const double sem = std::sqrt(var / static_cast<double>(std::max<int64_t>(1, n_scored - 1)));
  const double ppl = std::exp(mean);
  const KldSummary kld_summary = kld ? kld->finish(mean) : KldSummary{};
  const KldSummary* ks = kld ? &kld_summary : nullptr;
  if (o.json) {
    nlohmann::json j = {{"perplexity", ppl},       {"perplexity_error", ppl * sem},
                        {"nll_mean", mean},        {"scored_tokens", n_scored},
                        {"file_tokens", n_tok},    {"windows", n_windows},
                        {"ctx", window + (bos ? 1 : 0)}, {"n_vocab", n_vocab},
                        {"seconds", seconds}};
    if (ks && o.kld)
      j["kl_divergence"] = {{"mean", ks->kld_mean},         {"error", ks->kld_sem},
                            {"median", ks->kld_median},     {"p99", ks->kld_p99},
                            {"max", ks->kld_max},           {"same_top", ks->same_top},
                            {"base_perplexity", std::exp(ks->base_nll_mean)},
                            {"perplexity_ratio", std::exp(mean - ks->base_nll_mean)}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity: %.4f +/- %.4f  (%lld tokens scored in %d windows of %d, %.1f s; uniform over the "
                "vocabulary would be %lld)\n",
                ppl, ppl * sem, static_cast<long long>(n_scored), n_windows, window + (bos ? 1 : 0), seconds,
                static_cast<long long>(n_vocab));
  }
  if (ks && !o.kld && !o.json)
    std::printf("saved the distributions of %lld scored tokens to %s (the base for --kl-divergence)\n",
                static_cast<long long>(ks->tokens), o.kld_base.c_str());
  if (ks && o.kld && !o.json)
    std::printf("KL divergence from the base: mean %.6f +/- %.6f, median %.6f, 99%% %.6f, max %.6f; same top "
                "token %.2f%%; perplexity ratio %.4f (base %.4f)\n",
                ks->kld_mean, ks->kld_sem, ks->kld_median, ks->kld_p99, ks->kld_max, 100.0 * ks->same_top,
                std::exp(mean - ks->base_nll_mean), std::exp(ks->base_nll_mean));
  return 0;
}

}  // namespace

Command add_perplexity(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model over a text file (lower is better)");
  cmd->add_option("model", o->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("file", o->file, "UTF-8 text file")->required()->check(CLI::ExistingFile);
  add_ctx_size_option(cmd, o->ctx, "Window size in tokens; the second half of each window is scored")
      ->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-windows", o->max_windows, "Stop after this many windows (0 = the whole file)");
  add_threads_option(cmd, o->threads);
  cmd->add_flag("--json", o->json, "Print one JSON object (perplexity, perplexity_error, scored_tokens, ...)");
  cmd->add_option("--kl-divergence-base", o->kld_base,
                  "Without --kl-divergence: save this model's distributions over the scored tokens to this file "
                  "(run it on the base, e.g. F16, model). With --kl-divergence: compare against them");
  cmd->add_flag("--kl-divergence", o->kld,
                "Report the KL divergence from the base saved by --kl-divergence-base (same text, --ctx and "
                "--max-windows), how often the top token agrees, and the perplexity ratio");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  return [o]() { return run_perplexity(*o); };
}

}  // namespace volga::cli
