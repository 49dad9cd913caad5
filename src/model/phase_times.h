// PhaseTimes — where a forward pass spends its time, for `volga bench
// --moe-stats`: attention over the KV cache, expert routing, and the experts'
// products. Off unless a model is given a PhaseTimes (Model::time_phases);
// then each timed call costs two clock reads. Engine thread only.
#pragma once

#include <chrono>

namespace volga {

struct PhaseTimes {
  double attention = 0;  // seconds in paged attention (scores, softmax, weighted values)
  double routing = 0;    // router products, gating and top-k choice, gathering tokens per expert
  double experts = 0;    // routed and shared experts' products
};

// Adds the seconds of its lifetime to one phase of `times`, when not null.
class PhaseScope {
 public:
  PhaseScope(PhaseTimes* times, double PhaseTimes::*phase) : times_(times), phase_(phase) {
    if (times_) t0_ = std::chrono::steady_clock::now();
  }
  ~PhaseScope() {
    if (times_) times_->*phase_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimes* times_;
  double PhaseTimes::*phase_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace volga
