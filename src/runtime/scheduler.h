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
// Thread-safety: submit(), stats() and RequestHandle's reader side may be
// called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "sampling/sampler.h"
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
};

// The two ends of one request's event stream.
class RequestHandle {
 public:
  // Reader side. Waits up to `timeout_ms` for the next event; false on timeout.
  bool next(TokenEvent& ev, int timeout_ms);
  // Asks the engine to stop this request and free its slot (idempotent).
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Engine side.
  void push(TokenEvent ev);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  std::atomic<bool> cancelled_{false};
};

class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct SchedulerOptions {
  int n_slots = 4;            // sequences generated at once
  int n_ctx = 4096;           // context per sequence (prompt + generated)
  int max_queue = 64;         // waiting requests beyond the running ones
  int step_tokens = 256;      // token budget of one forward pass (decode + prefill chunks)
};

struct SchedulerStats {
  int queued = 0;
  int running = 0;
};

class Scheduler {
 public:
  Scheduler(Model& model, const SchedulerOptions& opts);
  ~Scheduler();  // cancels everything and joins the engine thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Throws QueueFullError when the queue is full, volga::Error when the
  // request cannot fit the context (the caller checks this first for a
  // friendlier message).
  std::shared_ptr<RequestHandle> submit(GenerationRequest req);
  SchedulerStats stats();
  const SchedulerOptions& options() const { return opts_; }

 private:
  struct Slot;
  void engine_loop();
  void step(std::vector<Slot>& slots, KvCache& cache);

  Model& model_;
  SchedulerOptions opts_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<GenerationRequest, std::shared_ptr<RequestHandle>>> queue_;
  int running_ = 0;
  bool stop_ = false;
  std::thread engine_;
};

}  // namespace volga
