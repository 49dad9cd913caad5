#include "cli/kl_divergence.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace volga::cli {

namespace {

// File layout (little-endian): "VKLD", u32 version, i64 n_vocab, i32 ctx,
// i32 method (0: Volga's windows, 1: --llama-compatible), i64 n_tokens, i32 tokens[n_tokens]; then n_vocab float32
// log-probabilities per scored token; then the trailer i64 scored tokens,
// f64 mean negative log-likelihood of the base.
constexpr char kMagic[4] = {'V', 'K', 'L', 'D'};
constexpr uint32_t kVersion = 1;

// log-softmax of n logits into out (double accumulation).
void log_softmax(const float* logits, int64_t n, float* out) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
  const double lse = std::log(sum) + mx;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

}  // namespace

KlDivergence::KlDivergence(const std::string& path, bool compare, int64_t n_vocab, int ctx, int32_t method,
                           const std::vector<int32_t>& tokens)
    : path_(path), compare_(compare), n_vocab_(n_vocab), logp_(static_cast<size_t>(n_vocab)) {
  f_ = std::fopen(path.c_str(), compare ? "rb" : "wb");
  if (!f_) throw Error("cannot open '" + path + "' for " + (compare ? "reading" : "writing"));
  const int64_t n_tok = static_cast<int64_t>(tokens.size());
  if (!compare) {
    bool ok = std::fwrite(kMagic, 4, 1, f_) == 1 && std::fwrite(&kVersion, 4, 1, f_) == 1 &&
              std::fwrite(&n_vocab, 8, 1, f_) == 1 && std::fwrite(&ctx, 4, 1, f_) == 1 &&
              std::fwrite(&method, 4, 1, f_) == 1 && std::fwrite(&n_tok, 8, 1, f_) == 1;
    ok = ok && (tokens.empty() || std::fwrite(tokens.data(), 4, tokens.size(), f_) == tokens.size());
    if (!ok) throw Error("cannot write '" + path + "'");
    return;
  }
  base_.resize(static_cast<size_t>(n_vocab));
  char magic[4];
  uint32_t version = 0;
  int64_t vocab = 0, base_n = 0;
  int32_t base_ctx = 0, base_method = 0;
  const std::string what = "'" + path + "' is not a KL-divergence base file of volga perplexity";
  if (std::fread(magic, 4, 1, f_) != 1 || std::memcmp(magic, kMagic, 4) != 0 || std::fread(&version, 4, 1, f_) != 1 ||
      version != kVersion || std::fread(&vocab, 8, 1, f_) != 1 || std::fread(&base_ctx, 4, 1, f_) != 1 ||
      std::fread(&base_method, 4, 1, f_) != 1 || std::fread(&base_n, 8, 1, f_) != 1)
    throw Error(what);
  if (vocab != n_vocab)
    throw Error("the base in '" + path + "' has a vocabulary of " + std::to_string(vocab) + ", this model " +
                std::to_string(n_vocab) + ": compare models that share a tokenizer");
  if (base_ctx != ctx)
    throw Error("the base in '" + path + "' was made with --ctx " + std::to_string(base_ctx) + ", this run uses " +
                std::to_string(ctx));
  if (base_method != method)
    throw Error("the base in '" + path + "' was made " + (base_method ? "with" : "without") +
                " --llama-compatible, this run " + (method ? "with" : "without") + " it: use the same windows");
  if (base_n != n_tok) throw Error("the base in '" + path + "' was made from another text (token count differs)");
  std::vector<int32_t> base_tokens(static_cast<size_t>(n_tok));
  if (n_tok > 0 && std::fread(base_tokens.data(), 4, base_tokens.size(), f_) != base_tokens.size()) throw Error(what);
  if (base_tokens != tokens) throw Error("the base in '" + path + "' was made from another text or tokenizer");
  // The trailer: scored tokens and the base's mean NLL.
  const long data_start = std::ftell(f_);
  if (std::fseek(f_, -16, SEEK_END) != 0 || std::fread(&base_tokens_, 8, 1, f_) != 1 ||
      std::fread(&base_nll_mean_, 8, 1, f_) != 1 || std::fseek(f_, data_start, SEEK_SET) != 0)
    throw Error(what + " (truncated)");
}

KlDivergence::~KlDivergence() {
  if (f_) std::fclose(f_);
}

void KlDivergence::add(const float* logits) {
  log_softmax(logits, n_vocab_, logp_.data());
  ++tokens_;
  if (!compare_) {
    if (std::fwrite(logp_.data(), 4, logp_.size(), f_) != logp_.size()) throw Error("cannot write '" + path_ + "'");
    return;
  }
  if (tokens_ > base_tokens_ || std::fread(base_.data(), 4, base_.size(), f_) != base_.size())
    throw Error("the base in '" + path_ + "' has fewer scored tokens than this run: make it with the same "
                "--ctx and --max-windows");
  double kld = 0;
  for (size_t i = 0; i < base_.size(); ++i)
    kld += std::exp(static_cast<double>(base_[i])) * (static_cast<double>(base_[i]) - logp_[i]);
  kld_.push_back(std::max(0.0, kld));
  same_top_ += argmax(base_.data(), n_vocab_) == argmax(logp_.data(), n_vocab_);
}

KldSummary KlDivergence::finish(double nll_mean) {
  KldSummary s;
  s.tokens = tokens_;
  if (!compare_) {
    const double mean = nll_mean;
    if (std::fwrite(&tokens_, 8, 1, f_) != 1 || std::fwrite(&mean, 8, 1, f_) != 1 || std::fclose(f_) != 0) {
      f_ = nullptr;
      throw Error("cannot write '" + path_ + "'");
    }
    f_ = nullptr;
    s.base_nll_mean = mean;
    return s;
  }
  if (tokens_ != base_tokens_)
    throw Error("the base in '" + path_ + "' has " + std::to_string(base_tokens_) + " scored tokens, this run " +
                std::to_string(tokens_) + ": make it with the same --ctx and --max-windows");
  s.base_nll_mean = base_nll_mean_;
  if (kld_.empty()) return s;
  double sum = 0, sq = 0;
  for (double k : kld_) sum += k, sq += k * k;
  const double n = static_cast<double>(kld_.size());
  s.kld_mean = sum / n;
  s.kld_sem = std::sqrt(std::max(0.0, sq / n - s.kld_mean * s.kld_mean) / std::max(1.0, n - 1));
  std::vector<double> sorted(kld_);
  std::sort(sorted.begin(), sorted.end());
  s.kld_median = sorted[sorted.size() / 2];
  s.kld_p99 = sorted[std::min(sorted.size() - 1, static_cast<size_t>(0.99 * n))];
  s.kld_max = sorted.back();
  s.same_top = static_cast<double>(same_top_) / n;
  return s;
}

}  // namespace volga::cli
