// Throughput of single-token attention at depth, straight from the kernel
// tables: one key/value head with `group` query heads over `depth` cached
// positions (a paged cache of random rows of the cache type), timed for the
// whole-sequence kernel (kernels::attend) and, per chunk of positions, for
// the chunk partials plus their merge (the split decode path). Reported as
// GB/s of cache read (keys and values) and GFLOP/s (2 (dk + dv) flops per
// query and position); best of the repetitions, one thread.
//
//   build/bin/volga-attend-bench [--depth D] [--group G] [--dk K] [--dv V] [--type f16] [--isa avx512] [--reps N]
//
// Defaults: the Qwen3.5-0.8B full-attention head (4 query heads of 256 per
// key/value head) at depth 8192 with an f16 cache.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

#include "bench_timing.h"

using namespace volga;
using namespace volga::kernels;

namespace {

using bench::best_seconds;
using bench::Clock;

// A paged cache of n_pos random rows of `width` elements stored as `type`,
// the blocks in reverse order.
struct Paged {
  std::vector<uint8_t> pool;
  std::vector<int32_t> ids;
  PagedRows rows;
};
Paged make_paged(int64_t n_pos, int64_t width, DType type, std::mt19937& rng) {
  Paged p;
  const int64_t rb = row_bytes(type, width), n_blocks = (n_pos + kKvBlockTokens - 1) / kKvBlockTokens;
  const int64_t block_bytes = kKvBlockTokens * rb;
  p.pool.resize(static_cast<size_t>(n_blocks * block_bytes));
  p.ids.resize(static_cast<size_t>(n_blocks));
  for (int64_t i = 0; i < n_blocks; ++i) p.ids[static_cast<size_t>(i)] = static_cast<int32_t>(n_blocks - 1 - i);
  std::normal_distribution<float> nd;
  std::vector<float> row(static_cast<size_t>(width));
  for (int64_t r = 0; r < n_blocks * kKvBlockTokens; ++r) {
    for (float& v : row) v = nd(rng);
    quantize_row(type, row.data(), p.pool.data() + r * rb, width);
  }
  p.rows = {p.pool.data(), p.ids.data(), block_bytes, rb, 0, type};
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Single-thread throughput of one token's attention over a deep KV cache"};
  int depth = 8192, group = 4, reps = 20;
  int64_t dk = 256, dv = 256;
  std::string type_name = "f16", isa_arg;
  app.add_option("--depth", depth, "Cached positions the token attends to")->check(CLI::Range(1, 1 << 20));
  app.add_option("--group", group, "Query heads per key/value head")->check(CLI::Range(1, 64));
  app.add_option("--dk", dk, "Key width")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--dv", dv, "Value width")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--type", type_name, "Cache type: f32, f16, bf16, q8_0");
  app.add_option("--isa", isa_arg, "Kernel set (default: the best this CPU runs)");
  app.add_option("--reps", reps, "Repetitions; the best is reported")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    const DType type = parse_dtype(type_name);
    const KernelTable& k = isa_arg.empty() ? active_kernels() : kernel_table(parse_isa(isa_arg));
    std::mt19937 rng(1);
    const Paged keys = make_paged(depth, dk, type, rng), values = make_paged(depth, dv, type, rng);
    std::normal_distribution<float> nd;
    std::vector<float> q(static_cast<size_t>(group * dk)), out(static_cast<size_t>(group * dv));
    for (float& v : q) v = nd(rng);
    AttendTile a;
    a.q = q.data();
    a.q_stride = group * dk;
    a.out = out.data();
    a.out_stride = group * dv;
    a.n_tokens = 1;
    a.group = group;
    a.n_pos0 = depth;
    a.dk = dk;
    a.dv = dv;
    a.keys = keys.rows;
    a.values = values.rows;
    a.scale = 0.0625f;
    std::vector<float> scratch(static_cast<size_t>(attend_scratch(group, dk, dv)));
    const double t = best_seconds(reps, [&] { k.attend(a, scratch.data()); });
    const double bytes = static_cast<double>(depth) * static_cast<double>(row_bytes(type, dk) + row_bytes(type, dv));
    const double flops = 2.0 * group * static_cast<double>(depth) * static_cast<double>(dk + dv);
    std::printf("%s, %s cache, depth %d, group %d, dk %lld, dv %lld, best of %d, one thread\n", k.name,
                dtype_name(type), depth, group, static_cast<long long>(dk), static_cast<long long>(dv), reps);
    std::printf("| path | ms | cache GB/s | GFLOP/s |\n|---|---|---|---|\n");
    std::printf("| attend | %.3f | %.2f | %.1f |\n", t * 1e3, bytes / t / 1e9, flops / t / 1e9);
    // The split form: every chunk's partial, then the merge (what decode
    // spreads over threads), on this one thread.
    const int64_t n_chunks = attend_chunks(a), part = attend_part_floats(group, dv);
    std::vector<float> parts(static_cast<size_t>(n_chunks * part)), out2(out.size());
    std::vector<float> chunk_scratch(static_cast<size_t>(attend_chunk_scratch(group, dk, dv)));
    a.out = out2.data();
    const double t2 = best_seconds(reps, [&] {
      for (int64_t c = 0; c < n_chunks; ++c) k.attend_chunk(a, c, parts.data() + c * part, chunk_scratch.data());
      k.attend_merge(a, parts.data());
    });
    std::printf("| %lld chunks + merge | %.3f | %.2f | %.1f |\n", static_cast<long long>(n_chunks), t2 * 1e3,
                bytes / t2 / 1e9, flops / t2 / 1e9);
    if (out != out2) std::printf("warning: the two paths differ (they must give the same bits)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "volga-attend-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
