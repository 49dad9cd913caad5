#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>

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
  // Tokens to compute before the next sample: the prompt, or after a
  // preemption the prompt and every generated token.
  std::vector<int32_t> work;
  std::vector<int32_t> generated;
  int32_t next_token = -1;   // sampled, not yet in the cache
  bool lookup = false;       // look for cached blocks before computing `work`
  bool busy = false;         // in a forward pass in flight (pipelines)
  uint64_t admitted = 0;     // admission number: higher is newer
};

Scheduler::Scheduler(Model& model, const SchedulerOptions& opts) : model_(model), opts_(opts) {
  if (opts_.n_slots < 1 || opts_.n_ctx < 8 || opts_.step_tokens < opts_.n_slots || opts_.max_queue < 0 ||
      opts_.kv_blocks < 0)
    throw Error("scheduler: invalid options");
  KvCacheOptions ko;
  ko.n_seq = opts_.n_slots;
  ko.n_ctx = opts_.n_ctx;
  ko.n_blocks = opts_.kv_blocks;
  ko.type_k = opts_.type_k;
  ko.type_v = opts_.type_v;
  ko.n_snapshots = opts_.n_snapshots;
  cache_ = std::make_unique<KvCache>(model_.spec(), ko);
  kv_capacity_ = cache_->n_blocks() * KvCache::kBlockTokens;
  totals_.blocks_total = cache_->n_blocks();
  totals_.block_bytes = cache_->block_bytes();
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
  const int64_t need = static_cast<int64_t>(req.prompt.size()) + std::max(1, req.max_tokens);
  if (need > opts_.n_ctx)
    throw Error("the request needs " + std::to_string(need) + " tokens, more than the context of " +
                std::to_string(opts_.n_ctx));
  if (need > kv_capacity_)
    throw Error("the request needs " + std::to_string(need) + " tokens, more than the KV cache holds (" +
                std::to_string(kv_capacity_) + " positions)");
  req.sampling.validate();
  auto handle = std::make_shared<RequestHandle>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    int waiting = static_cast<int>(queue_.size());
    int free_slots = opts_.n_slots - running_;
    if (waiting >= free_slots + opts_.max_queue) throw QueueFullError("the server is busy: too many requests are waiting");
    queue_.emplace_back(std::move(req), handle);
    live_.erase(std::remove_if(live_.begin(), live_.end(), [](const auto& w) { return w.expired(); }), live_.end());
    live_.push_back(handle);
  }
  cv_.notify_one();
  return handle;
}

void Scheduler::fail_everything(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& w : live_)
    if (auto handle = w.lock()) {
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = why;
      ev.unavailable = true;
      handle->push(std::move(ev));
    }
}

struct Scheduler::Task {
  std::function<void(Model&)> fn;
  std::promise<void> done;
};

void Scheduler::run_on_engine(const std::function<void(Model&)>& task) {
  auto t = std::make_shared<Task>();
  t->fn = task;
  std::future<void> done = t->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) throw Error("the server is shutting down");
    if (static_cast<int>(tasks_.size()) >= std::max(1, opts_.max_queue))
      throw QueueFullError("the server is busy: too many requests are waiting");
    tasks_.push_back(t);
  }
  cv_.notify_one();
  done.get();
}

void Scheduler::run_one_task() {
  std::shared_ptr<Task> t;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tasks_.empty()) return;
    t = tasks_.front();
    tasks_.pop_front();
  }
  try {
    t->fn(model_);
    t->done.set_value();
  } catch (...) {
    t->done.set_exception(std::current_exception());
  }
}

SchedulerStats Scheduler::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  SchedulerStats st = totals_;
  st.queued = static_cast<int>(queue_.size());
  st.running = running_;
  st.slots = opts_.n_slots;
  return st;
}

// Oldest request first, while a slot is free and the pool can hold the part
// of the prompt that is not cached (or nothing else runs: it fits alone).
void Scheduler::admit(std::vector<Slot>& slots, KvCache& cache) {
  while (!queue_.empty()) {
    size_t s = 0;
    while (s < slots.size() && slots[s].handle) ++s;
    if (s == slots.size()) return;  // every slot is busy
    const std::vector<int32_t>& prompt = queue_.front().first.prompt;
    const int n = static_cast<int>(prompt.size());
    const int cached = cache.cached_prefix(prompt.data(), n, n - 1);
    const int64_t need = KvCache::blocks_for(n + 1) - cached / KvCache::kBlockTokens;
    if (running_ > 0 && need > cache.available_blocks() - running_) return;  // wait for blocks
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
    Slot& slot = slots[s];
    slot.handle = std::move(handle);
    slot.req = std::move(req);
    slot.sampler = std::move(sampler);
    for (int32_t id : slot.req.prompt) slot.sampler->accept(id);
    slot.work = slot.req.prompt;
    slot.generated.clear();
    slot.next_token = -1;
    slot.lookup = false;
    slot.admitted = ++admissions_;
    const int reused = cache.attach_prefix(static_cast<int>(s), slot.req.prompt.data(), n, n - 1);
    slot.handle->set_cached_tokens(reused);
    ++totals_.prefix_lookups;
    totals_.prefix_hit_tokens += reused;
    totals_.prompt_tokens += n;
    ++running_;
  }
}

void Scheduler::fail_all(std::vector<Slot>& slots, KvCache& cache, const std::string& error, bool unavailable) {
  if (!in_flight_.empty() && !unavailable) drain_in_flight(slots);  // the stages' replies, dropped
  in_flight_.clear();
  try {
    model_.abandon();
  } catch (const std::exception&) {
  }
  for (Slot& slot : slots) slot.busy = false;
  for (size_t s = 0; s < slots.size(); ++s) {
    Slot& slot = slots[s];
    cache.truncate(static_cast<int>(s), cache.length(static_cast<int>(s)));  // blocks reserved by the failed pass
    if (!slot.handle) continue;
    TokenEvent ev;
    ev.kind = TokenEvent::Kind::Error;
    ev.error = error;
    ev.unavailable = unavailable;
    slot.handle->push(std::move(ev));
    release(slot, cache, static_cast<int>(s));
  }
}

void Scheduler::engine_loop() {
  KvCache& cache = *cache_;
  std::vector<Slot> slots(static_cast<size_t>(opts_.n_slots));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || running_ > 0 || !tasks_.empty(); });
      if (stop_) break;
      admit(slots, cache);
    }
    run_one_task();  // between steps: a task never sees a half-built batch
    if (std::none_of(slots.begin(), slots.end(), [](const Slot& sl) { return sl.handle != nullptr; })) continue;
    try {
      step(slots, cache);
    } catch (const std::exception& e) {
      // A failure in the forward pass ends the requests in it, not the server.
      fail_all(slots, cache, e.what(), dynamic_cast<const UnavailableError*>(&e) != nullptr);
    }
    publish(slots, cache);
  }
  drain_in_flight(slots);
  for (auto& slot : slots)
    if (slot.handle) {
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = "the server is shutting down";
      slot.handle->push(std::move(ev));
    }
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& t : tasks_) t->done.set_exception(std::make_exception_ptr(Error("the server is shutting down")));
  tasks_.clear();
  for (auto& [req, handle] : queue_) {
    TokenEvent ev;
    ev.kind = TokenEvent::Kind::Error;
    ev.error = "the server is shutting down";
    handle->push(std::move(ev));
  }
  queue_.clear();
}

void Scheduler::publish(const std::vector<Slot>& slots, const KvCache& cache) {
  int64_t positions = 0;
  for (size_t s = 0; s < slots.size(); ++s) positions += cache.length(static_cast<int>(s));
  std::lock_guard<std::mutex> lock(mutex_);
  totals_.cached_tokens = positions;
  totals_.blocks_used = cache.used_blocks();
  totals_.blocks_cached = cache.cached_blocks();
  totals_.evictions = cache.evictions();
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

void Scheduler::release(Slot& slot, KvCache& cache, int seq) {
  slot.handle.reset();
  slot.sampler.reset();
  cache.truncate(seq, 0);  // full blocks stay cached for the next requests
  std::lock_guard<std::mutex> lock(mutex_);
  --running_;
}

// Gives back the blocks of the most recently admitted running sequence that
// holds any; it will be computed again, from its prompt and generated tokens,
// when there is room. False when no sequence holds blocks.
bool Scheduler::preempt_newest(std::vector<Slot>& slots, KvCache& cache, size_t requester) {
  size_t victim = slots.size();
  for (size_t s = 0; s < slots.size(); ++s)
    if (slots[s].handle && !slots[s].busy && cache.seq_blocks(static_cast<int>(s)) > 0 &&
        (victim == slots.size() || slots[s].admitted > slots[victim].admitted))
      victim = s;
  if (victim == slots.size()) return false;
  Slot& v = slots[victim];
  if (victim == requester) {
    // The requester is the newest: it waits. If it is alone, it cannot fit at all.
    bool others = false;
    for (size_t s = 0; s < slots.size(); ++s) others = others || (s != victim && slots[s].handle);
    others = others || !in_flight_.empty();
    if (!others) return false;
  }
  cache.truncate(static_cast<int>(victim), 0);
  v.work = v.req.prompt;
  v.work.insert(v.work.end(), v.generated.begin(), v.generated.end());
  v.next_token = -1;
  v.lookup = true;
  std::lock_guard<std::mutex> lock(mutex_);
  ++totals_.preemptions;
  return true;
}

// One decode token per generating sequence first, then prompt chunks within
// the step's token budget, oldest request first; each takes its blocks from
// the pool, and a sequence that finds none preempts the newest one.
// `logits_slot` gets the slot of each logits row.
void Scheduler::build_batch(std::vector<Slot>& slots, KvCache& cache, Batch& batch, std::vector<size_t>& logits_slot,
                            size_t max_seqs, bool may_wait) {
  std::vector<size_t> order;
  for (size_t s = 0; s < slots.size(); ++s)
    if (slots[s].handle && !slots[s].busy) order.push_back(s);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return slots[a].admitted < slots[b].admitted; });
  // The oldest sequences first; in a pipeline, those of the pass just
  // collected (the others are in flight) up to the share of one pass.
  std::vector<size_t> keep;
  for (size_t s : order)
    if (keep.size() < max_seqs && (slots[s].next_token >= 0 || static_cast<int>(slots[s].work.size()) > 0)) keep.push_back(s);
  order = keep;
  int budget = opts_.step_tokens;
  for (size_t s : order) {
    Slot& slot = slots[s];
    const int seq = static_cast<int>(s);
    if (!slot.handle || slot.next_token < 0) continue;
    bool room = cache.reserve(seq, cache.length(seq) + 1);
    while (!room && preempt_newest(slots, cache, s)) {
      if (slot.next_token < 0) break;  // it was the newest: it gave way
      room = cache.reserve(seq, cache.length(seq) + 1);
    }
    if (slot.next_token < 0) continue;
    if (!room && may_wait) continue;  // passes in flight will give blocks back
    if (!room) {  // alone and still no block: cannot happen when submit() checked the size
      TokenEvent ev;
      ev.kind = TokenEvent::Kind::Error;
      ev.error = "the KV cache is full";
      slot.handle->push(std::move(ev));
      release(slot, cache, seq);
      continue;
    }
    batch.add(slot.next_token, cache.length(seq), seq, true);
    logits_slot.push_back(s);
    --budget;
  }
  for (size_t s : order) {
    if (budget <= 0) break;
    Slot& slot = slots[s];
    const int seq = static_cast<int>(s);
    if (!slot.handle || slot.next_token >= 0) continue;
    const int n_work = static_cast<int>(slot.work.size());
    if (slot.lookup) {
      cache.attach_prefix(seq, slot.work.data(), n_work, n_work - 1);
      slot.lookup = false;
    }
    const int done = cache.length(seq);
    const int64_t room = (cache.seq_blocks(seq) + cache.available_blocks()) * KvCache::kBlockTokens - done;
    const int take = static_cast<int>(std::min<int64_t>({n_work - done, budget, room}));
    if (take <= 0) continue;
    cache.reserve(seq, done + take);
    for (int i = 0; i < take; ++i) {
      const int p = done + i;
      const bool last = p + 1 == n_work;
      batch.add(slot.work[static_cast<size_t>(p)], p, seq, last);
      if (last) logits_slot.push_back(s);
    }
    budget -= take;
  }
}

// Samples a slot's next token from its logits row and sends it; ends the
// request on a stop id, its length limit or a stuck grammar.
void Scheduler::deliver(Slot& slot, KvCache& cache, int seq, const float* logits, int64_t n_vocab) {
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
    release(slot, cache, seq);
    return;
  }
  slot.generated.push_back(id);
  TokenEvent ev;
  ev.id = id;
  if (slot.req.top_logprobs >= 0) add_logprobs(logits, n_vocab, id, slot.req.top_logprobs, ev);
  slot.handle->push(std::move(ev));
  const bool stop_id = std::find(slot.req.stop_ids.begin(), slot.req.stop_ids.end(), id) != slot.req.stop_ids.end() ||
                       slot.sampler->grammar_finished();
  const bool full = static_cast<int>(slot.generated.size()) >= slot.req.max_tokens || cache.length(seq) >= opts_.n_ctx;
  if (stop_id || full) {
    TokenEvent done;
    done.kind = TokenEvent::Kind::Done;
    done.finish_reason = stop_id ? "stop" : "length";
    slot.handle->push(std::move(done));
    release(slot, cache, seq);
  } else {
    slot.next_token = id;
  }
}

void Scheduler::step(std::vector<Slot>& slots, KvCache& cache) {
  for (size_t s = 0; s < slots.size(); ++s)
    if (slots[s].handle && !slots[s].busy && slots[s].handle->cancelled()) release(slots[s], cache, static_cast<int>(s));
  if (model_.pipeline_depth() > 1) return step_pipelined(slots, cache);
  Batch batch;
  std::vector<size_t> logits_slot;
  build_batch(slots, cache, batch, logits_slot);
  if (batch.empty()) {
    // Every running sequence is waiting for blocks held by the others (long
    // prompts filling the pool together): the newest gives way.
    for (size_t s = 0; s < slots.size(); ++s)
      if (slots[s].handle) {
        preempt_newest(slots, cache, slots.size());
        break;
      }
    return;
  }
  Logits logits = model_.forward(batch, cache);
  for (int64_t row = 0; row < logits.rows(); ++row) {
    const size_t s = logits_slot[static_cast<size_t>(row)];
    deliver(slots[s], cache, static_cast<int>(s), logits.row(row), logits.n_vocab);
  }
}

}  // namespace volga

namespace volga {

// Fills the pipeline with up to pipeline_depth() passes, each with an equal
// share of the running sequences, then collects the oldest pass and samples
// its tokens; its sequences then go into the next pass while the others are
// still in flight.
void Scheduler::step_pipelined(std::vector<Slot>& slots, KvCache& cache) {
  const size_t depth = static_cast<size_t>(model_.pipeline_depth());
  size_t running = 0;
  for (const Slot& slot : slots) running += slot.handle != nullptr;
  const size_t share = std::max<size_t>(1, (running + depth - 1) / depth);
  while (in_flight_.size() < depth) {
    Batch batch;
    InFlight pass;
    build_batch(slots, cache, batch, pass.logits_slot, share, !in_flight_.empty());
    if (batch.empty()) break;
    for (const BatchToken& t : batch.tokens)
      if (pass.slots.empty() || pass.slots.back() != static_cast<size_t>(t.seq)) pass.slots.push_back(static_cast<size_t>(t.seq));
    model_.submit(batch, cache);
    for (size_t s : pass.slots) slots[s].busy = true;
    in_flight_.push_back(std::move(pass));
  }
  if (in_flight_.empty()) {  // every sequence waits for blocks the others hold: the newest gives way
    preempt_newest(slots, cache, slots.size());
    return;
  }
  Logits logits = model_.collect();
  InFlight pass = std::move(in_flight_.front());
  in_flight_.pop_front();
  for (size_t s : pass.slots) slots[s].busy = false;
  if (static_cast<size_t>(logits.rows()) != pass.logits_slot.size()) throw Error("internal: a pass returned the wrong rows");
  for (int64_t row = 0; row < logits.rows(); ++row) {
    const size_t s = pass.logits_slot[static_cast<size_t>(row)];
    if (slots[s].handle) deliver(slots[s], cache, static_cast<int>(s), logits.row(row), logits.n_vocab);
  }
}

void Scheduler::drain_in_flight(std::vector<Slot>& slots) {
  try {
    for (; !in_flight_.empty(); in_flight_.pop_front()) (void)model_.collect();
  } catch (const std::exception&) {
    in_flight_.clear();
  }
  for (Slot& slot : slots) slot.busy = false;
}

}  // namespace volga
