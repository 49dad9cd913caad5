#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "util/thread_pool.h"

namespace volga {
namespace {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 7, 64, 1001}) {
      for (int64_t grain : {1, 4, 100}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, [&](int64_t b, int64_t e, int tid) {
          EXPECT_LT(tid, threads);
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, ReusedManyTimes) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep)
    pool.parallel_for(10, [&](int64_t b, int64_t e, int) { sum += e - b; });
  EXPECT_EQ(sum.load(), 20000);
}

TEST(ThreadPool, DynamicCoversEveryIndexExactlyOnceInChunks) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 64, 1001}) {
      for (int64_t chunk : {1, 3, 100}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int tid) {
          EXPECT_LT(tid, threads);
          if (threads > 1) {  // one thread: a single call over [0, n)
            EXPECT_EQ(b % chunk, 0) << "ranges start on chunk boundaries";
            EXPECT_LE(e - b, chunk);
          }
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        }, chunk);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << chunk;
      }
    }
  }
}

// A thread that is held up takes fewer ranges: the others finish the job.
TEST(ThreadPool, DynamicRangesGoToTheThreadsThatAreFree) {
  ThreadPool pool(2);
  std::atomic<int> by_thread[2] = {0, 0};
  pool.parallel_for_dynamic(40, [&](int64_t, int64_t, int tid) {
    if (tid == 0 && by_thread[0].load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    by_thread[tid]++;
  }, 1);
  EXPECT_EQ(by_thread[0].load() + by_thread[1].load(), 40);
  EXPECT_GT(by_thread[1].load(), 30) << "the free thread should take nearly every range";
}

TEST(ThreadPool, StaticAndDynamicJobsAlternate) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 1000; ++rep) {
    pool.parallel_for(10, [&](int64_t b, int64_t e, int) { sum += e - b; });
    pool.parallel_for_dynamic(17, [&](int64_t b, int64_t e, int) { sum += e - b; }, 2);
  }
  EXPECT_EQ(sum.load(), 27000);
}

}  // namespace
}  // namespace volga
