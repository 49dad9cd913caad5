#include "server/metrics.h"

#include <cstdio>

namespace volga::server {

void Metrics::Histogram::observe(double x) {
  if (counts.empty()) counts.assign(bounds.size() + 1, 0);
  size_t i = 0;
  while (i < bounds.size() && x > bounds[i]) ++i;
  ++counts[i];
  sum += x;
  ++n;
}

void Metrics::Histogram::render(std::string& out, const char* name, const char* help) const {
  char buf[256];
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += counts.empty() ? 0 : counts[i];
    if (i < bounds.size()) std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], static_cast<unsigned long long>(cumulative));
    else std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n", name, static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%s_sum %.6f\n%s_count %llu\n", name, sum, name, static_cast<unsigned long long>(n));
  out += buf;
}

void Metrics::count_request(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[status];
}
void Metrics::add_prompt_tokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += static_cast<uint64_t>(n);
}
void Metrics::add_generated_tokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  generated_tokens_ += static_cast<uint64_t>(n);
}
void Metrics::observe_ttft(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  ttft_.observe(s);
}
void Metrics::observe_token_latency(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  token_latency_.observe(s);
}

void Metrics::render_engine(std::string& out, const SchedulerStats& e) {
  auto metric = [&out](const char* name, const char* type, const char* help, long long value) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, value);
    out += buf;
  };
  metric("volga_queue_length", "gauge", "Requests waiting for a free sequence slot.", e.queued);
  metric("volga_running_requests", "gauge", "Requests being generated.", e.running);
  metric("volga_slots", "gauge", "Sequence slots (--parallel).", e.slots);
  metric("volga_kv_cached_tokens", "gauge", "Token positions held by running sequences, all slots together.",
         static_cast<long long>(e.cached_tokens));
  metric("volga_kv_blocks_total", "gauge", "Blocks in the KV cache pool.", static_cast<long long>(e.blocks_total));
  metric("volga_kv_blocks_used", "gauge", "KV cache blocks held by running sequences.",
         static_cast<long long>(e.blocks_used));
  metric("volga_kv_blocks_cached", "gauge", "KV cache blocks kept for prefix reuse (evictable).",
         static_cast<long long>(e.blocks_cached));
  metric("volga_kv_block_bytes", "gauge", "Bytes of one KV cache block.", static_cast<long long>(e.block_bytes));
  metric("volga_kv_preemptions_total", "counter",
         "Sequences that gave their KV cache blocks back, to be computed again when there is room.",
         static_cast<long long>(e.preemptions));
  metric("volga_kv_evictions_total", "counter", "Cached KV blocks reused for other sequences.",
         static_cast<long long>(e.evictions));
  metric("volga_prefix_cache_lookups_total", "counter", "Requests that looked for a cached prompt prefix.",
         static_cast<long long>(e.prefix_lookups));
  metric("volga_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens taken from the KV cache instead of being computed.", static_cast<long long>(e.prefix_hit_tokens));
  metric("volga_prefix_cache_prompt_tokens_total", "counter", "Prompt tokens of the requests that looked up the cache.",
         static_cast<long long>(e.prompt_tokens));
}

std::string Metrics::render(const SchedulerStats& engine) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  char buf[1024];
  out += "# HELP volga_requests_total Completed HTTP requests to the completion endpoints, by status (499: client disconnected).\n"
         "# TYPE volga_requests_total counter\n";
  for (auto& [status, n] : requests_) {
    std::snprintf(buf, sizeof buf, "volga_requests_total{status=\"%d\"} %llu\n", status, static_cast<unsigned long long>(n));
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "# HELP volga_prompt_tokens_total Prompt tokens processed.\n# TYPE volga_prompt_tokens_total counter\n"
                "volga_prompt_tokens_total %llu\n"
                "# HELP volga_generation_tokens_total Tokens generated.\n# TYPE volga_generation_tokens_total counter\n"
                "volga_generation_tokens_total %llu\n",
                static_cast<unsigned long long>(prompt_tokens_), static_cast<unsigned long long>(generated_tokens_));
  out += buf;
  render_engine(out, engine);
  ttft_.render(out, "volga_time_to_first_token_seconds", "Time from request arrival to its first generated token.");
  token_latency_.render(out, "volga_time_per_output_token_seconds", "Time between consecutive tokens of one request.");
  return out;
}

}  // namespace volga::server
