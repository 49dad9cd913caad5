// ThreadPool — a persistent pool of worker threads for data-parallel kernels.
// parallel_for splits [0, n) into one contiguous range per thread; the calling
// thread takes part, so a pool of N threads starts N-1 workers.
// Thread-safety: parallel_for must be called from one thread at a time (the
// engine thread); it blocks until every range is done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace volga {

class ThreadPool {
 public:
  // n_threads <= 0 picks the number of hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) on disjoint ranges covering [0, n).
  // Ranges are rounded to multiples of `grain` (except the last).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                    int64_t grain = 1);
  // As parallel_for, but the threads take ranges of `chunk` units one after
  // another from a shared counter until none is left: a thread that is slowed
  // down (another process, a busy hypervisor) takes fewer. fn may be called
  // several times per thread; which thread computes a range varies. With one
  // thread, or n <= chunk, it is one call over [0, n).
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                            int64_t chunk);

 private:
  void worker_loop(int index);
  void run_share(int index);
  void dispatch(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain, bool dynamic);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_grain_ = 1;
  bool job_dynamic_ = false;
  std::atomic<int64_t> next_{0};  // dynamic jobs: the first unit not yet taken
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

}  // namespace volga
