// Scheduler — continuous batching on one engine thread.
//
// HTTP threads submit GenerationRequests (already tokenized) and read
// TokenEvents from the returned RequestHandle. The engine thread alone owns
// the Model and the KvCache: each step it admits queued requests into free
// sequence slots, builds one Batch with one decode token for every running
// sequence plus prompt chunks of sequences still in prefill (bounded by a
// token budget, so a long prompt never stalls the others' generation), runs
// one forward pass, and samples one token for each sequence that finished
// its prompt. A request's tokens do not depend on what else runs: every
// kernel computes each token's row with the same arithmetic whatever the
// batch holds, and each request has its own Sampler and seed.
//
// Memory: the KvCache is one pool of blocks shared by all slots (see
// model/kv_cache.h). A request in prefill takes blocks as its prompt chunks
// are computed, a generating one a block every kBlockTokens tokens. When the
// pool has no block left for a step, the most recently admitted sequence is
// preempted: its blocks are given back (its full blocks stay cached) and it
// is computed again, prompt and generated tokens, when blocks are free. Its
// sampler keeps its state, so it continues exactly as if never interrupted.
//
// Prefix reuse: full blocks are kept and found by content (token ids and
// everything before them), in any slot, after their request ended. A new
// request takes the longest cached chain of whole blocks matching its prompt
// and computes only the rest; the last prompt token is always computed
// again, since its logits are needed. Because every token's keys and values
// are computed with the same arithmetic whatever batch or chunk it came in,
// a reused prefix gives the same logits, bit for bit, as computing it again.
//
// Pipelines: when the model keeps several forward passes in flight
// (Model::pipeline_depth() > 1: a model split across MPI ranks), the
// running sequences are spread over that many smaller batches ("micro-
// batches"), each submitted as soon as its sequences are free, so the stages
// work on different batches at once; a sequence is in one pass at a time.
// Tokens do not change: each token's row is computed the same way in any batch.
//
// Thread-safety: submit(), stats() and RequestHandle's reader side may be
// called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "sampling/sampler.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace volga {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int32_t max_tokens = 16;
  std::vector<int32_t> stop_ids;  // generation ends after one of these (it is reported)
  int32_t top_logprobs = -1;      // -1: no log-probabilities; else also this many alternatives
};

struct TokenEvent {
  enum class Kind { Token, Done, Error } kind = Kind::Token;
  int32_t id = -1;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), most likely first
  std::string finish_reason;                   // Done: "stop" (stop id) or "length"
  std::string error;                           // Error
  bool unavailable = false;                    // Error: the service is down (UnavailableError), not the request
};

// The two ends of one request's event stream.
class RequestHandle {
 public:
  // Reader side. Waits up to `timeout_ms` for the next event; false on timeout.
  bool next(TokenEvent& ev, int timeout_ms);
  // Asks the engine to stop this request and free its slot (idempotent).
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // Prompt tokens taken from a slot's cache instead of computed (set at
  // admission, before the first event).
  int64_t cached_tokens() const { return cached_tokens_.load(); }

  // Engine side.
  void push(TokenEvent ev);
  void set_cached_tokens(int64_t n) { cached_tokens_.store(n); }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> cached_tokens_{0};
};

class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct SchedulerOptions {
  int n_slots = 4;            // sequences generated at once
  int n_ctx = 4096;           // most tokens of one request (prompt + generated)
  int max_queue = 64;         // waiting requests beyond the running ones
  int step_tokens = 256;      // token budget of one forward pass (decode + prefill chunks)
  int64_t kv_blocks = 0;      // KV cache pool; 0: n_slots full-context sequences
  DType type_k = DType::F16;  // KV cache types
  DType type_v = DType::F16;
  int n_snapshots = -1;       // hybrid models' state snapshots (KvCacheOptions)
};

struct SchedulerStats {
  int queued = 0;
  int running = 0;
  int slots = 0;
  int64_t cached_tokens = 0;        // positions held by running sequences, all slots together
  int64_t blocks_total = 0;         // KV cache pool: blocks of KvCache::kBlockTokens positions
  int64_t blocks_used = 0;          // held by running sequences
  int64_t blocks_cached = 0;        // kept for prefix reuse, evictable
  int64_t block_bytes = 0;
  int64_t preemptions = 0;          // sequences that gave their blocks back to be computed again later
  int64_t evictions = 0;            // cached blocks reused for something else
  int64_t prefix_lookups = 0;       // requests admitted (each looks for a cached prefix)
  int64_t prefix_hit_tokens = 0;    // prompt tokens taken from the cache instead of computed
  int64_t prompt_tokens = 0;        // prompt tokens of the admitted requests
};

class Scheduler {
 public:
  Scheduler(Model& model, const SchedulerOptions& opts);
  ~Scheduler();  // cancels everything and joins the engine thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Throws QueueFullError when the queue is full, volga::Error when the
  // request cannot fit the context or the KV cache pool even alone (the
  // caller checks this first for a friendlier message).
  std::shared_ptr<RequestHandle> submit(GenerationRequest req);
  SchedulerStats stats();

  // Runs `task` on the engine thread between two steps and waits for it:
  // model work outside the KV cache (embeddings, reranking). Running
  // generations pause for that long and are otherwise untouched (their
  // tokens do not depend on it). Rethrows what the task throws; throws
  // QueueFullError when max_queue tasks are already waiting, volga::Error
  // when the scheduler stops first. Any thread but the engine's.
  void run_on_engine(const std::function<void(Model&)>& task);
  // Ends every request, queued or running, with an Error event marked
  // `unavailable` (the server answers 503), without waiting for the engine
  // thread, which may be stuck waiting for a rank of an MPI job that has
  // died. Later events of those requests are not read. Any thread.
  void fail_everything(const std::string& why);
  const SchedulerOptions& options() const { return opts_; }
  // Positions the KV cache pool holds in all (a request's ceiling with n_ctx).
  int64_t kv_capacity_tokens() const { return kv_capacity_; }

 private:
  struct Slot;
  void engine_loop();
  // Moves queued requests into free slots (mutex_ held).
  void admit(std::vector<Slot>& slots, KvCache& cache);
  void step(std::vector<Slot>& slots, KvCache& cache);
  void step_pipelined(std::vector<Slot>& slots, KvCache& cache);
  // At most `max_seqs` sequences not in flight; `may_wait`: a sequence that
  // finds no block waits for the passes in flight instead of failing.
  void build_batch(std::vector<Slot>& slots, KvCache& cache, Batch& batch, std::vector<size_t>& logits_slot,
                   size_t max_seqs = SIZE_MAX, bool may_wait = false);
  void drain_in_flight(std::vector<Slot>& slots);  // collects and drops every pass in flight
  struct InFlight {
    std::vector<size_t> logits_slot;  // the slot of each logits row
    std::vector<size_t> slots;        // every slot in the pass
  };
  std::deque<InFlight> in_flight_;  // engine thread: submitted passes, oldest first
  bool preempt_newest(std::vector<Slot>& slots, KvCache& cache, size_t keep);
  void deliver(Slot& slot, KvCache& cache, int seq, const float* logits, int64_t n_vocab);
  void release(Slot& slot, KvCache& cache, int seq);
  void fail_all(std::vector<Slot>& slots, KvCache& cache, const std::string& error, bool unavailable);
  void publish(const std::vector<Slot>& slots, const KvCache& cache);

  Model& model_;
  SchedulerOptions opts_;
  std::unique_ptr<KvCache> cache_;  // the engine thread's alone once it runs
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<GenerationRequest, std::shared_ptr<RequestHandle>>> queue_;
  std::vector<std::weak_ptr<RequestHandle>> live_;  // every submitted request not yet gone (mutex_)
  struct Task;
  std::deque<std::shared_ptr<Task>> tasks_;
  void run_one_task();  // engine thread: the oldest waiting task, if any
  int running_ = 0;
  int64_t kv_capacity_ = 0;
  SchedulerStats totals_;  // the cache counters, published by the engine after each step (mutex_)
  uint64_t admissions_ = 0;  // engine thread: orders slots by last use
  bool stop_ = false;
  std::thread engine_;
};

}  // namespace volga
