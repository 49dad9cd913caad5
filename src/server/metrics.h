// Prometheus metrics of the server (text exposition format 0.0.4).
// Thread-safe: every method may be called from any HTTP thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/scheduler.h"

namespace volga::server {

class Metrics {
 public:
  void count_request(int status);
  void add_prompt_tokens(int64_t n);
  void add_generated_tokens(int64_t n);
  void observe_ttft(double seconds);           // time to first token
  void observe_token_latency(double seconds);  // time between tokens of one request
  // The server's counters plus the scheduler's gauges and prefix-cache counters.
  std::string render(const SchedulerStats& engine) const;

 private:
  static void render_engine(std::string& out, const SchedulerStats& engine);
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bound, plus +Inf
    double sum = 0;
    uint64_t n = 0;
    void observe(double x);
    void render(std::string& out, const char* name, const char* help) const;
  };
  mutable std::mutex mutex_;
  std::map<int, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_{{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}, {}};
  Histogram token_latency_{{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5}, {}};
};

}  // namespace volga::server
