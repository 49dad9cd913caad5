// Timing shared by the kernel benchmarks (volga-kernel-bench, volga-attend-bench).
#pragma once

#include <algorithm>
#include <chrono>

namespace volga::bench {

using Clock = std::chrono::steady_clock;

// The fastest of `reps` runs of fn, in seconds.
template <typename Fn>
double best_seconds(int reps, Fn&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace volga::bench
