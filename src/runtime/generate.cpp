#include "runtime/generate.h"

#include <algorithm>

#include "util/error.h"

namespace volga {

GenerateResult generate(Model& model, KvCache& cache, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opts, const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw Error("the prompt is empty (no tokens to start from)");
  if (static_cast<int64_t>(prompt.size()) > cache.n_ctx())
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds only " +
                std::to_string(cache.n_ctx()));
  Sampler sampler(opts.sampling);
  for (int32_t id : prompt) sampler.accept(id);

  GenerateResult res;
  Batch batch;
  Logits logits;
  const size_t chunk = static_cast<size_t>(std::max(1, opts.prefill_chunk));
  size_t start = static_cast<size_t>(cache.length(0));
  if (start >= prompt.size()) {  // logits of the last prompt token are needed
    // (a hybrid model's recurrent state cannot go back: it starts over from 0)
    start = static_cast<size_t>(cache.truncate(0, static_cast<int>(prompt.size() - 1)));
  }
  for (size_t i = start; i < prompt.size(); i += chunk) {
    batch.clear();
    size_t end = std::min(prompt.size(), i + chunk);
    for (size_t j = i; j < end; ++j)
      batch.add(prompt[j], static_cast<int32_t>(j), 0, j + 1 == prompt.size());
    logits = model.forward(batch, cache);
  }
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int32_t n = 0; n < opts.max_tokens; ++n) {
    int32_t id = sampler.sample(logits.row(0), logits.n_vocab);
    sampler.accept(id);
    sampler.accept_output(id);
    res.ids.push_back(id);
    bool keep_going = !on_token || on_token(id);
    if (std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end()) {
      res.stopped = true;
      break;
    }
    if (sampler.grammar_finished()) {  // nothing may follow: the text is complete
      res.stopped = true;
      break;
    }
    if (!keep_going || n + 1 == opts.max_tokens) break;
    if (pos >= cache.n_ctx()) break;  // context full: stop like max_tokens
    batch.clear();
    batch.add(id, pos++, 0, true);
    logits = model.forward(batch, cache);
  }
  return res;
}

}  // namespace volga
