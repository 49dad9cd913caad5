// Single-thread throughput of the integer-product kernels, straight from the
// ISA tables: for each quantized type, bytes of weights per second for the
// in-place (few-token) kernel and the panel kernel, next to a plain read of
// the same bytes. Random weights quantized with quantize_row, random
// activations; best of the repetitions (the minimum time is the least
// disturbed by the host).
//
//   build/bin/volga-kernel-bench [--rows R] [--cols K] [--tokens T] [--isa avx512|avx2] [--reps N]
//                                [--types iq2_xxs,iq3_s,...]
//
// rows x cols larger than the caches measures from memory (the default,
// 8192 x 4864, is 20-40 MB); small ones measure from L2.
#include <immintrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/x86/int8_x86.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"
#include "tensor/type_traits.h"
#include "util/cpu_features.h"

#include "bench_timing.h"

using namespace volga;
using namespace volga::kernels;

namespace {

using bench::best_seconds;
using bench::Clock;

// Sums the bytes 32 at a time (AVX2): the read rate the kernels compete with.
__attribute__((target("avx2"))) int64_t plain_read(const uint8_t* p, size_t n) {
  __m256i acc = _mm256_setzero_si256();
  for (size_t i = 0; i + 32 <= n; i += 32)
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)),
                                                 _mm256_setzero_si256()));
  alignas(32) int64_t v[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), acc);
  return v[0] + v[1] + v[2] + v[3];
}

// rows x cols random normal weights stored as `type` into `bytes`.
WeightMatrix random_weights(DType type, int64_t rows, int64_t cols, std::mt19937& rng, std::vector<uint8_t>& bytes) {
  std::normal_distribution<float> nd;
  const int64_t rb = row_bytes(type, cols);
  bytes.resize(static_cast<size_t>(rb * rows));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = nd(rng);
    quantize_row(type, row.data(), bytes.data() + r * rb, cols);
  }
  return WeightMatrix{type, rows, cols, rb, bytes.data()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Single-thread throughput of the integer-product kernels (GB/s of weights)"};
  int64_t rows = 8192, cols = 4864, tokens = 1;
  int reps = 20;
  std::string isa_name_arg = "avx512";
  std::vector<std::string> type_names;
  app.add_option("--rows", rows, "Weight rows")->check(CLI::Range(int64_t{8}, int64_t{1} << 22));
  app.add_option("--cols", cols, "Weight columns (a multiple of 256 for the k-quants, else 32)")
      ->check(CLI::Range(int64_t{32}, int64_t{1} << 20));
  app.add_option("--tokens", tokens, "Activation rows (tokens)")->check(CLI::Range(1, 512));
  app.add_option("--isa", isa_name_arg, "Kernel set: avx512 (VNNI) or avx2")->check(CLI::IsMember({"avx512", "avx2"}));
  app.add_option("--reps", reps, "Repetitions; the best is reported")->check(CLI::Range(1, 1000));
  app.add_option("--types", type_names, "Only these types (comma-separated names, as volga quantize takes them)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  std::vector<DType> only;
  try {
    for (const std::string& n : type_names) only.push_back(parse_dtype(n));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "volga-kernel-bench: %s\n", e.what());
    return 2;
  }
  if (cols % 32 != 0) {
    std::fprintf(stderr, "volga-kernel-bench: --cols must be a multiple of 32\n");
    return 2;
  }
  const bool avx512 = isa_name_arg == "avx512";
  const CpuFeatures& cpu = cpu_features();
  if (avx512 ? !(cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512vnni) : !(cpu.avx2 && cpu.fma)) {
    std::fprintf(stderr, "volga-kernel-bench: this CPU cannot run the %s kernels\n", isa_name_arg.c_str());
    return 2;
  }
  auto gemv = avx512 ? avx512vnni::gemv_rows_int8 : avx2::gemv_rows_int8;
  auto panel = avx512 ? avx512vnni::panel_rows_int8 : avx2::panel_rows_int8;
  const KernelTable& k = kernel_table(avx512 ? Isa::Avx512 : Isa::Avx2);

  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> xf(static_cast<size_t>(cols * tokens));
  for (auto& v : xf) v = nd(rng);
  // Activations in both schemes: block 32 (legacy types, i-quants) and
  // block 256 (the k-quants).
  Int8ActsBuffer acts32, acts256;
  quantize_int8_acts(k, DType::Q8_0, xf.data(), cols, tokens, acts32);
  if (cols % 256 == 0) quantize_int8_acts(k, DType::Q4_K, xf.data(), cols, tokens, acts256);

  std::printf("%s, %lld x %lld, %lld token(s), best of %d, one thread\n", isa_name_arg.c_str(),
              static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(tokens), reps);
  std::printf("| type | MB | plain read GB/s | in place GB/s | panel GB/s |\n|---|---|---|---|---|\n");
  for (DType type : kSupportedTypes) {  // every type the integer products take
    if (!int8_type(traits(type)) || cols % traits(type).block_size != 0) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), type) == only.end()) continue;
    std::vector<uint8_t> w;
    const WeightMatrix wm = random_weights(type, rows, cols, rng, w);
    std::vector<float> y(static_cast<size_t>(rows * tokens));
    const Int8Acts& acts = int8_acts_block(type) == 256 ? acts256.view : acts32.view;
    volatile int64_t sink = 0;
    const double bytes = static_cast<double>(w.size());
    const double t_read = best_seconds(reps, [&] { sink = sink + plain_read(w.data(), w.size()); });
    const double t_gemv = best_seconds(reps, [&] { gemv(wm, 0, rows, acts, y.data(), rows); });
    const double t_panel = best_seconds(reps, [&] { panel(wm, 0, rows, acts, y.data(), rows); });
    std::printf("| %s | %.1f | %.2f | %.2f | %.2f |\n", dtype_name(type), bytes / 1e6, bytes / t_read / 1e9,
                bytes / t_gemv / 1e9, bytes / t_panel / 1e9);
  }

  // The float products (16-bit weights, fp32 FMA): GFLOP/s against this
  // thread's own FMA peak, which is what bounds them in prefill.
  const double flops = 2.0 * static_cast<double>(rows * cols * tokens);
  double peak = 0;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = Clock::now();
    const double ops = k.fma_probe(20'000'000);
    peak = std::max(peak, ops / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::printf("\n| type | MB | GFLOP/s | of the fp32 FMA peak (%.1f GFLOP/s) |\n|---|---|---|---|\n", peak / 1e9);
  for (DType type : {DType::F16, DType::BF16}) {
    std::vector<uint8_t> w;
    const WeightMatrix wm = random_weights(type, rows, cols, rng, w);
    std::vector<float> y(static_cast<size_t>(rows * tokens));
    const double t = best_seconds(reps, [&] { k.matmul_rows(wm, 0, rows, xf.data(), tokens, y.data(), rows); });
    std::printf("| %s | %.1f | %.1f | %.0f%% |\n", dtype_name(type), static_cast<double>(w.size()) / 1e6,
                flops / t / 1e9, 100 * flops / t / peak);
  }
  return 0;
}
