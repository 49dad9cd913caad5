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
};

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
  return {static_cast<int>(queue_.size()), running_};
}

void Scheduler::engine_loop() {
  KvCache cache(model_.spec(), opts_.n_slots, opts_.n_ctx);
  std::vector<Slot> slots(static_cast<size_t>(opts_.n_slots));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || running_ > 0; });
      if (stop_) break;
      // Admit waiting requests into free slots, oldest first.
      for (size_t s = 0; s < slots.size() && !queue_.empty(); ++s) {
        if (slots[s].handle) continue;
        auto [req, handle] = std::move(queue_.front());
        queue_.pop_front();
        Slot& slot = slots[s];
        slot.handle = std::move(handle);
        slot.req = std::move(req);
        slot.sampler = std::make_unique<Sampler>(slot.req.sampling);
        for (int32_t id : slot.req.prompt) slot.sampler->accept(id);
        slot.n_prefilled = 0;
        slot.next_token = -1;
        slot.n_generated = 0;
        cache.truncate(static_cast<int>(s), 0);
        ++running_;
      }
    }
    try {
      step(slots, cache);
    } catch (const std::exception& e) {
      // A failure in the forward pass ends the requests in it, not the server.
      for (size_t s = 0; s < slots.size(); ++s) {
        if (!slots[s].handle) continue;
        TokenEvent ev;
        ev.kind = TokenEvent::Kind::Error;
        ev.error = e.what();
        slots[s].handle->push(std::move(ev));
        slots[s].handle.reset();
        cache.truncate(static_cast<int>(s), 0);
        std::lock_guard<std::mutex> lock(mutex_);
        --running_;
      }
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

void Scheduler::step(std::vector<Slot>& slots, KvCache& cache) {
  auto release = [&](size_t s) {
    slots[s].handle.reset();
    slots[s].sampler.reset();
    cache.truncate(static_cast<int>(s), 0);
    std::lock_guard<std::mutex> lock(mutex_);
    --running_;
  };
  for (size_t s = 0; s < slots.size(); ++s)
    if (slots[s].handle && slots[s].handle->cancelled()) release(s);

  // One decode token per generating sequence first, then prompt chunks.
  Batch batch;
  std::vector<int> logits_slot;  // slot of each logits row, in batch order
  int budget = opts_.step_tokens;
  for (size_t s = 0; s < slots.size(); ++s) {
    Slot& slot = slots[s];
    if (!slot.handle || slot.next_token < 0) continue;
    batch.add(slot.next_token, cache.length(static_cast<int>(s)), static_cast<int32_t>(s), true);
    logits_slot.push_back(static_cast<int>(s));
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
      if (last) logits_slot.push_back(static_cast<int>(s));
    }
    slot.n_prefilled += take;
    budget -= static_cast<int>(take);
  }
  if (batch.empty()) return;
  Logits logits = model_.forward(batch, cache);

  for (int64_t row = 0; row < logits.rows(); ++row) {
    const size_t s = static_cast<size_t>(logits_slot[static_cast<size_t>(row)]);
    Slot& slot = slots[s];
    const float* l = logits.row(row);
    int32_t id = -1;
    try {
      id = slot.sampler->sample(l, logits.n_vocab);
    } catch (const Error& e) {  // this request's grammar is stuck: end it alone
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = e.what();
      slot.handle->push(std::move(ev));
      release(s);
      continue;
    }
    slot.sampler->accept(id);
    slot.sampler->accept_output(id);
    ++slot.n_generated;
    TokenEvent ev;
    ev.id = id;
    if (slot.req.top_logprobs >= 0) add_logprobs(l, logits.n_vocab, id, slot.req.top_logprobs, ev);
    slot.handle->push(std::move(ev));
    const bool stop_id = std::find(slot.req.stop_ids.begin(), slot.req.stop_ids.end(), id) != slot.req.stop_ids.end() ||
                         slot.sampler->grammar_finished();
    const bool full = slot.n_generated >= slot.req.max_tokens || cache.length(static_cast<int>(s)) >= opts_.n_ctx;
    if (stop_id || full) {
      TokenEvent done;
      done.kind = TokenEvent::Kind::Done;
      done.finish_reason = stop_id ? "stop" : "length";
      slot.handle->push(std::move(done));
      release(s);
    } else {
      slot.next_token = id;
    }
  }
}

}  // namespace volga
