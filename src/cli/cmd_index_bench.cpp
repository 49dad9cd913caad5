// volga index bench: builds a temporary index of random L2-normalised
// vectors, then times queries (latency percentiles) and measures recall
// against an exact search. Figures for docs/PERFORMANCE.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "retrieval/index.h"
#include "util/error.h"

namespace volga::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> random_unit(std::mt19937_64& rng, int64_t dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(dim));
  double sum = 0;
  for (float& x : v) {
    x = normal(rng);
    sum += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(sum));
  return v;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Indices of the k largest dot products with q (exact search).
std::vector<int64_t> exact_top(const std::vector<std::vector<float>>& all, const std::vector<float>& q, int64_t k) {
  std::vector<std::pair<float, int64_t>> scored;
  scored.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    float dot = 0;
    for (size_t j = 0; j < q.size(); ++j) dot += all[i][j] * q[j];
    scored.push_back({dot, static_cast<int64_t>(i)});
  }
  std::partial_sort(scored.begin(), scored.begin() + k, scored.end(), std::greater<>());
  std::vector<int64_t> out;
  for (int64_t i = 0; i < k; ++i) out.push_back(scored[static_cast<size_t>(i)].second);
  return out;
}

}  // namespace

int run_index_bench(int64_t chunks, int64_t dim, int64_t queries, int64_t k) {
  if (chunks < 1 || dim < 1 || queries < 1 || k < 1 || k > chunks)
    throw Error("index bench needs --chunks, --dim, --queries >= 1 and 1 <= -k <= --chunks");
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/volga-index-bench-XXXXXX";
  if (!mkdtemp(tmpl)) throw Error("cannot create a temporary directory in /tmp");
  const fs::path dir(tmpl);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  std::mt19937_64 rng(42);
  std::vector<std::vector<float>> all;
  all.reserve(static_cast<size_t>(chunks));
  const int64_t per_doc = 100;
  auto t0 = Clock::now();
  {
    auto index = retrieval::DocIndex::create(dir.string(), dim, "random (" + std::to_string(dim) + "-d)");
    for (int64_t d = 0; d * per_doc < chunks; ++d) {
      std::vector<retrieval::ChunkRecord> records;
      for (int64_t c = d * per_doc; c < std::min(chunks, (d + 1) * per_doc); ++c) {
        all.push_back(random_unit(rng, dim));
        records.push_back({"chunk " + std::to_string(c), 0, 0, all.back()});
      }
      index->put_document({"/bench/doc" + std::to_string(d), 0, 0, "", 0}, records);
    }
    index->commit();
  }
  const double build_ms = ms_since(t0);
  t0 = Clock::now();
  auto index = retrieval::DocIndex::open(dir.string(), true);
  const double open_ms = ms_since(t0);
  std::vector<double> lat;
  int64_t found = 0, expected = 0;
  for (int64_t q = 0; q < queries; ++q) {
    // Queries near a stored vector (as real queries are near their answers).
    std::vector<float> query = all[static_cast<size_t>(rng() % all.size())];
    const std::vector<float> noise = random_unit(rng, dim);
    for (size_t j = 0; j < query.size(); ++j) query[j] += 0.5f * noise[j];
    double sum = 0;
    for (float x : query) sum += static_cast<double>(x) * x;
    for (float& x : query) x = static_cast<float>(x / std::sqrt(sum));
    t0 = Clock::now();
    const auto hits = index->search(query, k);
    lat.push_back(ms_since(t0));
    if (q < 100) {  // recall@k against the exact answer on the first 100 queries
      const auto exact = exact_top(all, query, k);
      for (const auto& h : hits) {
        const int64_t id = std::atoll(h.text.c_str() + 6);
        found += std::count(exact.begin(), exact.end(), id);
      }
      expected += k;
    }
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat[std::min(lat.size() - 1, static_cast<size_t>(p * lat.size()))]; };
  double mean = 0;
  for (double l : lat) mean += l;
  mean /= static_cast<double>(lat.size());
  std::printf("index bench: %lld vectors of %lld floats (hnswlib M=16, ef_construction=200, ef=64)\n",
              static_cast<long long>(chunks), static_cast<long long>(dim));
  std::printf("build + commit: %.1f s; open (read, verify, load): %.0f ms\n", build_ms / 1000, open_ms);
  std::printf("search k=%lld over %lld queries: mean %.3f ms, p50 %.3f ms, p95 %.3f ms, p99 %.3f ms\n",
              static_cast<long long>(k), static_cast<long long>(queries), mean, pct(0.5), pct(0.95), pct(0.99));
  std::printf("recall@%lld against exact search: %.3f\n", static_cast<long long>(k),
              static_cast<double>(found) / static_cast<double>(expected));
  return 0;
}

}  // namespace volga::cli
