#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define VOLGA_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define VOLGA_CPU_RELAX() __asm__ volatile("yield")
#else
#define VOLGA_CPU_RELAX() ((void)0)
#endif

namespace volga {

namespace {
// The range of thread `index` among `n_threads` over [0, n) in units of `grain`.
void split_range(int64_t n, int64_t grain, int n_threads, int index, int64_t* begin,
                 int64_t* end) {
  int64_t units = (n + grain - 1) / grain;
  int64_t per = units / n_threads, extra = units % n_threads;
  int64_t u0 = index * per + std::min<int64_t>(index, extra);
  int64_t u1 = u0 + per + (index < extra ? 1 : 0);
  *begin = std::min(n, u0 * grain);
  *end = std::min(n, u1 * grain);
}

// Decode runs a few hundred parallel_for calls per token, each only tens of
// microseconds long: waking a sleeping thread costs about as much. So both
// sides spin briefly before sleeping on the condition variable.
constexpr auto kSpin = std::chrono::microseconds(200);
// The clock is read every so many pauses, not on every one: reading it costs
// more than the pause, and a spinning thread should take as little as it can
// from a sibling hardware thread that has work.
constexpr unsigned kSpinsPerClock = 32;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t grain) {
  dispatch(n, fn, grain, false);
}

void ThreadPool::parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                                      int64_t chunk) {
  dispatch(n, fn, chunk, true);
}

// This thread's share of the current job: its static range, or ranges taken
// from the shared counter until none is left.
void ThreadPool::run_share(int index) {
  const auto& fn = *job_;
  if (job_dynamic_) {
    for (;;) {
      const int64_t b = next_.fetch_add(job_grain_, std::memory_order_relaxed);
      if (b >= job_n_) break;
      fn(b, std::min(job_n_, b + job_grain_), index);
    }
    return;
  }
  int64_t b, e;
  split_range(job_n_, job_grain_, n_threads_, index, &b, &e);
  if (b < e) fn(b, e, index);
}

void ThreadPool::dispatch(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain,
                          bool dynamic) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    job_dynamic_ = dynamic;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  run_share(0);
  auto t0 = std::chrono::steady_clock::now();
  for (unsigned spins = 1; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    VOLGA_CPU_RELAX();
    if (spins % kSpinsPerClock == 0 && std::chrono::steady_clock::now() - t0 > kSpin) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, [this] { return pending_.load() == 0; });
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for new work first, then sleep.
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned spins = 1; generation_.load(std::memory_order_acquire) == seen; ++spins) {
      VOLGA_CPU_RELAX();
      if (spins % kSpinsPerClock == 0 && std::chrono::steady_clock::now() - t0 >= kSpin) break;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
    }
    // The job's fields are stable until every worker has decremented pending_.
    run_share(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the waiter's predicate check
      done_cv_.notify_one();
    }
  }
}

}  // namespace volga
