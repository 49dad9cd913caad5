#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/error.h"

namespace volga {

bool RequestHandle::next(TokenEvent& ev, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
  ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestHandle::push(TokenEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_one();
}

struct Scheduler::Slot {
  std::shared_ptr<RequestHandle> handle;  // null: free
  GenerationRequest req;
  std::unique_ptr<Sampler> sampler;
  size_t n_prefilled = 0;   // prompt tokens already in the cache
  int32_t next_token = -1;  // sampled, not yet in the cache
  int32_t n_generated = 0;
  // Token ids whose keys/values the cache holds at positions 0..size-1; kept
  // after the request ends, for the next request to reuse.
  std::vector<int32_t> cached;
  uint64_t last_used = 0;  // admission number of its latest request
};

namespace {
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Cached tokens a prompt can take from a slot: never its last token, whose
// logits must be computed.
size_t reusable(const std::vector<int32_t>& cached, const std::vector<int32_t>& prompt) {
  return std::min(common_prefix(cached, prompt), prompt.size() - 1);
}
}  // namespace

Scheduler::Scheduler(Model& model, const SchedulerOptions& opts) : model_(model), opts_(opts) {
  if (opts_.n_slots < 1 || opts_.n_ctx < 8 || opts_.step_tokens < opts_.n_slots || opts_.max_queue < 0)
    throw Error("scheduler: invalid options");
  engine_ = std::thread([this] { engine_loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  engine_.join();
}

std::shared_ptr<RequestHandle> Scheduler::submit(GenerationRequest req) {
  if (req.prompt.empty()) throw Error("the prompt is empty");
  if (static_cast<int64_t>(req.prompt.size()) + std::max(1, req.max_tokens) > opts_.n_ctx)
    throw Error("the request needs " + std::to_string(req.prompt.size() + static_cast<size_t>(std::max(1, req.max_tokens))) +
                " tokens, more than the context of " + std::to_string(opts_.n_ctx));
  req.sampling.validate();
  auto handle = std::make_shared<RequestHandle>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    int waiting = static_cast<int>(queue_.size());
    int free_slots = opts_.n_slots - running_;
    if (waiting >= free_slots + opts_.max_queue) throw QueueFullError("the server is busy: too many requests are waiting");
    queue_.emplace_back(std::move(req), handle);
  }
  cv_.notify_one();
  return handle;
}

SchedulerStats Scheduler::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  SchedulerStats st = totals_;
  st.queued = static_cast<int>(queue_.size());
  st.running = running_;
  st.slots = opts_.n_slots;
  return st;
}

void Scheduler::admit(std::vector<Slot>& slots, KvCache& cache) {
  while (!queue_.empty()) {
    const std::vector<int32_t>& prompt = queue_.front().first.prompt;
    int best = -1;
    size_t best_reuse = 0;
    for (size_t s = 0; s < slots.size(); ++s) {
      if (slots[s].handle) continue;
      const size_t reuse = reusable(slots[s].cached, prompt);
      if (best < 0 || reuse > best_reuse ||
          (reuse == best_reuse && slots[s].last_used < slots[static_cast<size_t>(best)].last_used)) {
        best = static_cast<int>(s);
        best_reuse = reuse;
      }
    }
    if (best < 0) return;  // every slot is busy
    auto [req, handle] = std::move(queue_.front());
    queue_.pop_front();
    std::unique_ptr<Sampler> sampler;
    try {
      sampler = std::make_unique<Sampler>(req.sampling);
    } catch (const std::exception& e) {  // e.g. a grammar that matches nothing: this request alone fails
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = e.what();
      handle->push(std::move(ev));
      continue;
    }
    Slot& slot = slots[static_cast<size_t>(best)];
    slot.handle = std::move(handle);
    slot.req = std::move(req);
    slot.sampler = std::move(sampler);
    for (int32_t id : slot.req.prompt) slot.sampler->accept(id);
    slot.n_prefilled = best_reuse;
    slot.handle->set_cached_tokens(static_cast<int64_t>(best_reuse));
    slot.next_token = -1;
    slot.n_generated = 0;
    slot.last_used = ++admissions_;
    totals_.cached_tokens -= static_cast<int64_t>(slot.cached.size() - best_reuse);
    slot.cached.resize(best_reuse);
    cache.truncate(best, static_cast<int>(best_reuse));
    ++totals_.prefix_lookups;
    totals_.prefix_hit_tokens += static_cast<int64_t>(best_reuse);
    totals_.prompt_tokens += static_cast<int64_t>(slot.req.prompt.size());
    ++running_;
  }
}

void Scheduler::fail_all(std::vector<Slot>& slots, KvCache& cache, const std::string& error) {
  for (size_t s = 0; s < slots.size(); ++s) {
    Slot& slot = slots[s];
    // The cache keeps what was computed: `cached` grows only after a forward pass succeeds.
    cache.truncate(static_cast<int>(s), static_cast<int>(slot.cached.size()));
    if (!slot.handle) continue;
    TokenEvent ev;
    ev.kind = TokenEvent::Kind::Error;
    ev.error = error;
    slot.handle->push(std::move(ev));
    slot.handle.reset();
    slot.sampler.reset();
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
  }
}

void Scheduler::engine_loop() {
  KvCache cache(model_.spec(), opts_.n_slots, opts_.n_ctx);
  std::vector<Slot> slots(static_cast<size_t>(opts_.n_slots));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || running_ > 0; });
      if (stop_) break;
      admit(slots, cache);
    }
    try {
      step(slots, cache);
    } catch (const std::exception& e) {
      // A failure in the forward pass ends the requests in it, not the server.
      fail_all(slots, cache, e.what());
    }
  }
  for (auto& slot : slots)
    if (slot.handle) {
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = "the server is shutting down";
      slot.handle->push(std::move(ev));
    }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [req, handle] : queue_) {
    TokenEvent ev;
    ev.kind = TokenEvent::Kind::Error;
    ev.error = "the server is shutting down";
    handle->push(std::move(ev));
  }
  queue_.clear();
}

namespace {
// Log-probabilities of the raw logits (before any sampling transform).
void add_logprobs(const float* logits, int64_t n_vocab, int32_t chosen, int32_t top_n, TokenEvent& ev) {
  float mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double log_z = mx + std::log(sum);
  ev.logprob = static_cast<float>(logits[chosen] - log_z);
  if (top_n <= 0) return;
  std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  const size_t k = std::min<size_t>(static_cast<size_t>(top_n), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  for (size_t i = 0; i < k; ++i) ev.top.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_z));
}
}  // namespace

void Scheduler::release(Slot& slot) {
  slot.handle.reset();
  slot.sampler.reset();  // the cache and `cached` stay, for the next request to reuse
  std::lock_guard<std::mutex> lock(mutex_);
  --running_;
}

// One decode token per generating sequence first, then prompt chunks within
// the step's token budget. `logits_slot` gets the slot of each logits row.
void Scheduler::build_batch(std::vector<Slot>& slots, const KvCache& cache, Batch& batch,
                            std::vector<size_t>& logits_slot) {
  int budget = opts_.step_tokens;
  for (size_t s = 0; s < slots.size(); ++s) {
    Slot& slot = slots[s];
    if (!slot.handle || slot.next_token < 0) continue;
    batch.add(slot.next_token, cache.length(static_cast<int>(s)), static_cast<int32_t>(s), true);
    logits_slot.push_back(s);
    --budget;
  }
  for (size_t s = 0; s < slots.size() && budget > 0; ++s) {
    Slot& slot = slots[s];
    if (!slot.handle || slot.next_token >= 0) continue;
    const size_t n_prompt = slot.req.prompt.size();
    const size_t take = std::min(n_prompt - slot.n_prefilled, static_cast<size_t>(budget));
    for (size_t i = 0; i < take; ++i) {
      const size_t p = slot.n_prefilled + i;
      const bool last = p + 1 == n_prompt;
      batch.add(slot.req.prompt[p], static_cast<int32_t>(p), static_cast<int32_t>(s), last);
      if (last) logits_slot.push_back(s);
    }
    slot.n_prefilled += take;
    budget -= static_cast<int>(take);
  }
}

// Samples a slot's next token from its logits row and sends it; ends the
// request on a stop id, its length limit or a stuck grammar.
void Scheduler::deliver(Slot& slot, const float* logits, int64_t n_vocab) {
  int32_t id = -1;
  try {
    id = slot.sampler->sample(logits, n_vocab);
    slot.sampler->accept(id);
    slot.sampler->accept_output(id);
  } catch (const Error& e) {  // this request's grammar is stuck or outgrew its limits: end it alone
    TokenEvent ev;
    ev.kind = TokenEvent::Kind::Error;
    ev.error = e.what();
    slot.handle->push(std::move(ev));
    release(slot);
    return;
  }
  ++slot.n_generated;
  TokenEvent ev;
  ev.id = id;
  if (slot.req.top_logprobs >= 0) add_logprobs(logits, n_vocab, id, slot.req.top_logprobs, ev);
  slot.handle->push(std::move(ev));
  const bool stop_id = std::find(slot.req.stop_ids.begin(), slot.req.stop_ids.end(), id) != slot.req.stop_ids.end() ||
                       slot.sampler->grammar_finished();
  const bool full = slot.n_generated >= slot.req.max_tokens || static_cast<int>(slot.cached.size()) >= opts_.n_ctx;
  if (stop_id || full) {
    TokenEvent done;
    done.kind = TokenEvent::Kind::Done;
    done.finish_reason = stop_id ? "stop" : "length";
    slot.handle->push(std::move(done));
    release(slot);
  } else {
    slot.next_token = id;
  }
}

void Scheduler::step(std::vector<Slot>& slots, KvCache& cache) {
  for (Slot& slot : slots)
    if (slot.handle && slot.handle->cancelled()) release(slot);
  Batch batch;
  std::vector<size_t> logits_slot;
  build_batch(slots, cache, batch, logits_slot);
  if (batch.empty()) return;
  Logits logits = model_.forward(batch, cache);
  // Only now do the new positions count as cached: a failed pass leaves `cached` as it was.
  for (const BatchToken& t : batch.tokens) slots[static_cast<size_t>(t.seq)].cached.push_back(t.token);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    totals_.cached_tokens += static_cast<int64_t>(batch.size());
  }
  for (int64_t row = 0; row < logits.rows(); ++row)
    deliver(slots[logits_slot[static_cast<size_t>(row)]], logits.row(row), logits.n_vocab);
}

}  // namespace volga
