// volga perplexity MODEL TEXT_FILE [--ctx N]: perplexity of a model over a file.
//
// Method (in the manner of llama.cpp's llama-perplexity): the tokenized file
// is cut into non-overlapping windows of N tokens; each window is evaluated
// from an empty cache and the second half of its tokens is scored, so every
// scored token sees about N/2 tokens of context. Volga's windows lose no token
// of the text to BOS and score one token more per window than llama-perplexity;
// --llama-compatible cuts and scores exactly as llama-perplexity does, so the
// two tools print the same figure for the same model (WindowPlan below).
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
  bool llama_compatible = false;
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

// Which tokens each window evaluates and which of its logit rows are scored.
//
// Volga's windows (the default): each window holds BOS (when the vocabulary
// asks for one) and the next ctx-1 tokens of the text, so no token of the text
// is lost to BOS; the second half of the window's tokens is scored (n - n/2
// tokens of a window of n). A file shorter than one window is one window.
//
// llama-perplexity's windows (--llama-compatible): the text is tokenized with
// BOS in front, cut into chunks of exactly ctx tokens, and the first token of
// every chunk is replaced by BOS (so chunks after the first lose one token of
// the text); the logits at positions ctx/2 .. ctx-2 are scored (ctx/2 - 1
// tokens per chunk for an even ctx). As llama-perplexity, it needs 2*ctx tokens.
struct WindowPlan {
  std::vector<int32_t> stream;  // the tokens windows are cut from
  int32_t bos = -1;             // -1: the vocabulary asks for no BOS
  bool llama = false;
  int step = 0;                 // tokens of `stream` per window
  int n_windows = 0;

  int window_size() const { return step + (bos >= 0 && !llama ? 1 : 0); }

  std::vector<int32_t> ids(int w) const {
    std::vector<int32_t> out;
    if (bos >= 0 && !llama) out.push_back(bos);
    const auto from = stream.begin() + static_cast<int64_t>(w) * step;
    out.insert(out.end(), from, from + step);
    if (bos >= 0 && llama) out[0] = bos;
    return out;
  }

  // The first position whose logits (predicting the next token) are scored.
  int first_row(int n) const { return llama ? n / 2 : std::max(1, n / 2) - 1; }
};

WindowPlan plan_windows(const std::vector<int32_t>& tokens, int ctx, int32_t bos, bool llama, int max_windows) {
  WindowPlan p;
  p.bos = bos;
  p.llama = llama;
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  if (n_tok < 2) throw Error("the text has fewer than 2 tokens; nothing to score");
  if (llama) {
    if (bos >= 0) p.stream.push_back(bos);
    p.stream.insert(p.stream.end(), tokens.begin(), tokens.end());
    const int64_t n = static_cast<int64_t>(p.stream.size());
    if (n < 2 * static_cast<int64_t>(ctx))
      throw Error("--llama-compatible needs at least 2*ctx = " + std::to_string(2 * static_cast<int64_t>(ctx)) +
                  " tokens, as llama-perplexity does; the text has " + std::to_string(n) +
                  ": use a smaller --ctx-size or a longer text");
    p.step = ctx;
    p.n_windows = static_cast<int>(n / ctx);
  } else {
    p.stream = tokens;
    p.step = bos >= 0 ? ctx - 1 : ctx;
    p.n_windows = static_cast<int>(n_tok / p.step);
    if (p.n_windows == 0) {
      p.n_windows = 1;
      p.step = static_cast<int>(n_tok);
    }
  }
  if (max_windows > 0) p.n_windows = std::min(p.n_windows, max_windows);
  return p;
}

struct NllSum {
  double sum = 0, sq = 0;
  int64_t n = 0;
  void add(double nll) { sum += nll, sq += nll * nll, ++n; }
  double mean() const { return sum / static_cast<double>(n); }
};

// Evaluates window w from an empty cache and adds its scored tokens.
void score_window(Model& model, KvCache& cache, const WindowPlan& plan, int w, NllSum& acc, KlDivergence* kld) {
  cache.truncate(0, 0);
  const std::vector<int32_t> ids = plan.ids(w);
  const int n = static_cast<int>(ids.size());
  const int first = plan.first_row(n);
  Batch b;
  for (int i = 0; i < n - 1; ++i) b.add(ids[static_cast<size_t>(i)], i, 0, i >= first);
  Logits l = model.forward(b, cache);
  const int64_t n_vocab = model.spec().n_vocab;
  for (int64_t r = 0; r < l.rows(); ++r) {
    const int pos = l.batch_index[static_cast<size_t>(r)];
    acc.add(token_nll(l.row(r), n_vocab, ids[static_cast<size_t>(pos + 1)]));
    if (kld) kld->add(l.row(r));
  }
}

void print_result(const PplOptions& o, const WindowPlan& plan, const NllSum& acc, int64_t n_tok, int64_t n_vocab,
                  double seconds, const KldSummary* ks) {
  const double mean = acc.mean();
  const double var = std::max(0.0, acc.sq / static_cast<double>(acc.n) - mean * mean);
  const double sem = std::sqrt(var / static_cast<double>(std::max<int64_t>(1, acc.n - 1)));
  const double ppl = std::exp(mean);
  if (o.json) {
    nlohmann::json j = {{"perplexity", ppl},       {"perplexity_error", ppl * sem},
                        {"nll_mean", mean},        {"scored_tokens", acc.n},
                        {"file_tokens", n_tok},    {"windows", plan.n_windows},
                        {"ctx", plan.window_size()}, {"n_vocab", n_vocab},
                        {"llama_compatible", plan.llama}, {"seconds", seconds}};
    if (ks && o.kld)
      j["kl_divergence"] = {{"mean", ks->kld_mean},         {"error", ks->kld_sem},
                            {"median", ks->kld_median},     {"p99", ks->kld_p99},
                            {"max", ks->kld_max},           {"same_top", ks->same_top},
                            {"base_perplexity", std::exp(ks->base_nll_mean)},
                            {"perplexity_ratio", std::exp(mean - ks->base_nll_mean)}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("perplexity: %.4f +/- %.4f  (%lld tokens scored in %d windows of %d, %.1f s; uniform over the "
              "vocabulary would be %lld)\n",
              ppl, ppl * sem, static_cast<long long>(acc.n), plan.n_windows, plan.window_size(), seconds,
              static_cast<long long>(n_vocab));
  if (ks && !o.kld)
    std::printf("saved the distributions of %lld scored tokens to %s (the base for --kl-divergence)\n",
                static_cast<long long>(ks->tokens), o.kld_base.c_str());
  if (ks && o.kld)
    std::printf("KL divergence from the base: mean %.6f +/- %.6f, median %.6f, 99%% %.6f, max %.6f; same top "
                "token %.2f%%; perplexity ratio %.4f (base %.4f)\n",
                ks->kld_mean, ks->kld_sem, ks->kld_median, ks->kld_p99, ks->kld_max, 100.0 * ks->same_top,
                std::exp(mean - ks->base_nll_mean), std::exp(ks->base_nll_mean));
}

int run_perplexity(const PplOptions& o) {
  if (o.ctx < 2) throw Error("--ctx must be at least 2");
  if (o.kld && o.kld_base.empty()) throw Error("--kl-divergence needs --kl-divergence-base FILE (made by a base run)");
  auto file = GgufFile::open(o.model);
  auto tok = Tokenizer::from_gguf(*file);
  ThreadPool pool(resolve_threads(o.threads));
  auto model = load_model(*file, pool);
  const std::vector<int32_t> tokens = tok->encode(read_text_file(o.file), false, false);
  const int n_ctx_train = static_cast<int>(std::min<int64_t>(model->spec().n_ctx_train, 1 << 30));
  int ctx = o.ctx;
  if (ctx > n_ctx_train) {
    std::fprintf(stderr, "volga: --ctx %d exceeds the model's trained context; using %d\n", ctx, n_ctx_train);
    ctx = n_ctx_train;
  }
  const int32_t bos = tok->add_bos() && tok->bos_id() >= 0 ? tok->bos_id() : -1;
  if (tokens.size() < 2) throw Error("'" + o.file + "' has fewer than 2 tokens; nothing to score");
  const WindowPlan plan = plan_windows(tokens, ctx, bos, o.llama_compatible, o.max_windows);
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  if (!o.quiet)
    std::fprintf(stderr, "volga perplexity: %lld tokens, %d windows of %d, scoring the second half of each%s\n",
                 static_cast<long long>(n_tok), plan.n_windows, plan.window_size(),
                 plan.llama ? " (llama-perplexity's windows)" : "");
  const int64_t n_vocab = model->spec().n_vocab;
  KvCache cache(model->spec(), 1, plan.window_size() + 1);
  std::unique_ptr<KlDivergence> kld;
  if (!o.kld_base.empty())
    kld = std::make_unique<KlDivergence>(o.kld_base, o.kld, n_vocab, plan.window_size(), plan.llama ? 1 : 0, tokens);
  const bool bar = !o.quiet && isatty(STDERR_FILENO);
  NllSum acc;
  const auto t0 = std::chrono::steady_clock::now();
  for (int w = 0; w < plan.n_windows; ++w) {
    score_window(*model, cache, plan, w, acc, kld.get());
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int nw = plan.n_windows;
    if (bar) draw_progress(w + 1, nw, std::exp(acc.mean()), elapsed);
    else if (!o.quiet && (nw < 20 || (w + 1) % (nw / 10) == 0 || w + 1 == nw))
      std::fprintf(stderr, "  window %d/%d  ppl %.4f\n", w + 1, nw, std::exp(acc.mean()));
  }
  if (bar) std::fprintf(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const KldSummary ks = kld ? kld->finish(acc.mean()) : KldSummary{};
  print_result(o, plan, acc, n_tok, n_vocab, seconds, kld ? &ks : nullptr);
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
  cmd->add_flag("--llama-compatible", o->llama_compatible,
                "Cut and score windows exactly as llama-perplexity does (BOS over the first token of each chunk, "
                "positions ctx/2..ctx-2 scored; needs 2*ctx tokens), so figures compare with llama.cpp's");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  return [o]() { return run_perplexity(*o); };
}

}  // namespace volga::cli
