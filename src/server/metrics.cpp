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

std::string Metrics::render(int queued, int running) const {
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
  std::snprintf(buf, sizeof buf,
                "# HELP volga_queue_length Requests waiting for a free sequence slot.\n# TYPE volga_queue_length gauge\n"
                "volga_queue_length %d\n"
                "# HELP volga_running_requests Requests being generated.\n# TYPE volga_running_requests gauge\n"
                "volga_running_requests %d\n",
                queued, running);
  out += buf;
  ttft_.render(out, "volga_time_to_first_token_seconds", "Time from request arrival to its first generated token.");
  token_latency_.render(out, "volga_time_per_output_token_seconds", "Time between consecutive tokens of one request.");
  return out;
}

}  // namespace volga::server
