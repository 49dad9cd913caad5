// The tiled attention kernel (kernels/attend_tiled.h) on every ISA this CPU
// runs: against a plain float64 attention over the same (exactly converted)
// rows, bit for bit across ISAs, and independent of the tile a query is in
// (how many tokens share the call, how a group of heads is split), over
// every cache type, head groups, MLA widths and lengths that cross blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_fixtures.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "tensor/quant.h"

using namespace volga;
using namespace volga::kernels;
using namespace volga::test;

namespace {

// A paged copy of rows [n_pos][width] stored as `type` in blocks of
// kKvBlockTokens rows, the blocks in shuffled order with a gap between rows
// and a head at element `first` of each row; `floats` gets the rows as the
// kernel must see them (exactly dequantized).
struct PagedCopy {
  std::vector<uint8_t> pool;
  std::vector<int32_t> ids;
  std::vector<float> floats;
  PagedRows rows;
};
PagedCopy make_paged(const std::vector<float>& src, int n_pos, int64_t width, DType type, uint32_t seed,
                     int64_t pad = 32) {
  PagedCopy c;
  const int64_t first = pad, row_w = first + width + pad;  // the head sits between other heads
  const int64_t rb = row_bytes(type, row_w), n_blocks = (n_pos + kKvBlockTokens - 1) / kKvBlockTokens + 2;
  const int64_t block_bytes = kKvBlockTokens * rb + 64;
  c.pool.assign(static_cast<size_t>(n_blocks * block_bytes), 0xAB);
  c.ids.resize(static_cast<size_t>(n_blocks));
  for (int64_t i = 0; i < n_blocks; ++i) c.ids[static_cast<size_t>(i)] = static_cast<int32_t>(n_blocks - 1 - i);
  std::swap(c.ids[0], c.ids[static_cast<size_t>(seed % n_blocks)]);
  std::vector<float> row(static_cast<size_t>(row_w));
  c.floats.resize(static_cast<size_t>(n_pos * width));
  for (int p = 0; p < n_pos; ++p) {
    auto other = random_floats(row.size(), seed + 1000 + static_cast<uint32_t>(p));
    row = other;
    std::copy_n(&src[static_cast<size_t>(p * width)], width, &row[static_cast<size_t>(first)]);
    uint8_t* dst = c.pool.data() + c.ids[static_cast<size_t>(p / kKvBlockTokens)] * block_bytes +
                   (p % kKvBlockTokens) * rb;
    quantize_row(type, row.data(), dst, row_w);
    std::vector<float> back(row.size());
    dequantize_row(type, dst, back.data(), row_w);
    std::copy_n(&back[static_cast<size_t>(first)], width, &c.floats[static_cast<size_t>(p * width)]);
  }
  c.rows = {c.pool.data(), c.ids.data(), block_bytes, rb, row_bytes(type, first), type};
  return c;
}

struct Case {
  DType type;
  int group;
  int64_t dk, dv;
  int n_tokens, n_pos0;
  int64_t pad = 32;  // elements of other heads on each side of the head in a cache row
};

// Queries, cache and the float64 answer of one case.
struct Problem {
  Case c;
  std::vector<float> q;
  PagedCopy keys, values;

  Problem(const Case& cs, uint32_t seed) : c(cs) {
    const int n_pos = c.n_pos0 + c.n_tokens - 1;
    q = random_floats(static_cast<size_t>(c.n_tokens * c.group * c.dk), seed, 2.0f);
    keys = make_paged(random_floats(static_cast<size_t>(n_pos * c.dk), seed + 1, 2.0f), n_pos, c.dk, c.type, seed, c.pad);
    values = make_paged(random_floats(static_cast<size_t>(n_pos * c.dv), seed + 2), n_pos, c.dv, c.type, seed + 7, c.pad);
  }
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(c.dk)); }

  // Tokens [t0, t0 + n), heads [g0, g1), through one kernel call.
  std::vector<float> run(const KernelTable& k, int t0, int n, int g0, int g1) const {
    std::vector<float> out(static_cast<size_t>(n * (g1 - g0) * c.dv), -7.0f);
    AttendTile a;
    a.q = q.data() + (t0 * c.group + g0) * c.dk;
    a.q_stride = c.group * c.dk;
    a.out = out.data();
    a.out_stride = (g1 - g0) * c.dv;
    a.n_tokens = n;
    a.group = g1 - g0;
    a.n_pos0 = c.n_pos0 + t0;
    a.dk = c.dk;
    a.dv = c.dv;
    a.keys = keys.rows;
    a.values = values.rows;
    a.scale = scale();
    std::vector<float> scratch(static_cast<size_t>(attend_scratch(n * (g1 - g0), c.dk, c.dv)));
    k.attend(a, scratch.data());
    return out;
  }
  std::vector<float> run(const KernelTable& k) const { return run(k, 0, c.n_tokens, 0, c.group); }

  // Softmax attention in double over the rows the kernel sees.
  std::vector<double> exact() const {
    std::vector<double> out(static_cast<size_t>(c.n_tokens * c.group * c.dv), 0.0);
    for (int t = 0; t < c.n_tokens; ++t)
      for (int g = 0; g < c.group; ++g) {
        const float* qq = q.data() + (t * c.group + g) * c.dk;
        const int n_pos = c.n_pos0 + t;
        std::vector<double> s(static_cast<size_t>(n_pos));
        double mx = -INFINITY, sum = 0;
        for (int p = 0; p < n_pos; ++p) {
          double d = 0;
          for (int64_t j = 0; j < c.dk; ++j) d += static_cast<double>(qq[j]) * keys.floats[static_cast<size_t>(p * c.dk + j)];
          s[static_cast<size_t>(p)] = d * scale();
          mx = std::max(mx, s[static_cast<size_t>(p)]);
        }
        for (double& v : s) sum += (v = std::exp(v - mx));
        double* o = &out[static_cast<size_t>((t * c.group + g) * c.dv)];
        for (int p = 0; p < n_pos; ++p)
          for (int64_t d = 0; d < c.dv; ++d) o[d] += s[static_cast<size_t>(p)] / sum * values.floats[static_cast<size_t>(p * c.dv + d)];
      }
    return out;
  }
};

std::string label(const Case& c) {
  return std::string(dtype_name(c.type)) + " group " + std::to_string(c.group) + " dk " + std::to_string(c.dk) +
         " dv " + std::to_string(c.dv) + " tokens " + std::to_string(c.n_tokens) + " n_pos0 " + std::to_string(c.n_pos0);
}

// Every ISA within float rounding of the float64 attention.
void expect_float64_attention(const Problem& pr) {
  const Case& c = pr.c;
  const std::vector<double> want = pr.exact();
  double vmax = 0;
  for (float v : pr.values.floats) vmax = std::max(vmax, static_cast<double>(std::fabs(v)));
  for (Isa isa : available_isas()) {
    const std::vector<float> got = pr.run(kernel_table(isa));
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 2e-6 * vmax * std::sqrt(static_cast<double>(c.dk)))
          << isa_name(isa) << " " << label(c) << " at " << i;
  }
}

// Every ISA gives the reference kernels' bits.
void expect_reference_bits(const Problem& pr) {
  const std::vector<float> want = pr.run(ref_kernels());
  for (Isa isa : available_isas()) {
    const std::vector<float> got = pr.run(kernel_table(isa));
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), sizeof(float) * want.size())) << isa_name(isa) << " " << label(pr.c);
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  struct Shape {
    int group;
    int64_t dk, dv;
  };
  // Dense GQA heads (Qwen2-0.5B: 7 per key/value head of 64), odd widths
  // with vector tails, and MLA's latent cache (576-wide keys, 512-wide values).
  const Shape shapes[] = {{1, 64, 64}, {7, 64, 64}, {4, 128, 128}, {3, 20, 24}, {5, 40, 36}, {8, 576, 512}};
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    for (const Shape& s : shapes) {
      if (type == DType::Q8_0 && (s.dk % 32 != 0 || s.dv % 32 != 0)) continue;
      for (int n_tokens : {1, 6})
        for (int n_pos0 : {1, 5, 31, 32, 33, 70, 100}) {
          if (s.dk == 576 && n_pos0 != 33 && n_pos0 != 70) continue;  // keep the float64 loops short
          out.push_back({type, s.group, s.dk, s.dv, n_tokens, n_pos0});
        }
    }
  return out;
}

}  // namespace

// Within float rounding of the float64 attention, on every ISA.
TEST(Attention, TiledKernelMatchesFloat64Attention) {
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    Problem pr(c, seed++);
    ASSERT_NO_FATAL_FAILURE(expect_float64_attention(pr));
  }
}

// Every ISA gives the reference's bits.
TEST(Attention, TiledKernelIsBitIdenticalAcrossIsas) {
  uint32_t seed = 100;
  for (const Case& c : cases()) {
    Problem pr(c, seed++);
    ASSERT_NO_FATAL_FAILURE(expect_reference_bits(pr));
  }
}

// Rows holding many heads (an encoder's [token][n_embd] keys: 12 heads of 32
// in BGE-small; a KV cache row of many key/value heads) are far wider than a
// head: the few-query path that reads rows in place must touch only the
// head's elements (it once cleared a whole row's bytes in head-sized scratch).
TEST(Attention, WideRowsOfManyHeadsOnEveryIsa) {
  uint32_t seed = 900;
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    for (int n_pos0 : {9, 40})
      for (int n_tokens : {1, 3}) {
        const Case c{type, 1, 32, 32, n_tokens, n_pos0, 6 * 32};
        Problem pr(c, seed++);
        const std::vector<float> want = pr.run(ref_kernels());
        const std::vector<double> exact = pr.exact();
        for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(want[i], exact[i], 1e-4) << label(c);
        ASSERT_NO_FATAL_FAILURE(expect_reference_bits(pr));
      }
}

// A query's result does not depend on the tile it is computed in: each
// token alone, or the tokens cut in two tiles, and the heads of a group in
// two parts, give the bits of the whole tile.
TEST(Attention, TiledKernelResultDoesNotDependOnTheTile) {
  uint32_t seed = 300;
  for (const Case& c : cases()) {
    if (c.n_tokens == 1) continue;
    Problem pr(c, seed++);
    for (Isa isa : available_isas()) {
      const KernelTable& k = kernel_table(isa);
      const std::vector<float> all = pr.run(k);
      const size_t per_token = static_cast<size_t>(c.group * c.dv);
      for (int t = 0; t < c.n_tokens; ++t) {
        const std::vector<float> one = pr.run(k, t, 1, 0, c.group);
        ASSERT_EQ(0, std::memcmp(one.data(), all.data() + t * per_token, sizeof(float) * per_token))
            << isa_name(isa) << " " << label(c) << " token " << t << " alone";
      }
      const int cut = c.n_tokens / 2 - 1;  // an odd split: 2 and 4 of 6
      const std::vector<float> second = pr.run(k, cut, c.n_tokens - cut, 0, c.group);
      ASSERT_EQ(0, std::memcmp(second.data(), all.data() + cut * per_token, second.size() * sizeof(float)))
          << isa_name(isa) << " " << label(c) << " from token " << cut;
      if (c.group > 1) {
        const int g = c.group / 2;
        const std::vector<float> heads = pr.run(k, 0, c.n_tokens, g, c.group);
        for (int t = 0; t < c.n_tokens; ++t)
          ASSERT_EQ(0, std::memcmp(heads.data() + t * (c.group - g) * c.dv, all.data() + t * per_token + g * c.dv,
                                   sizeof(float) * (c.group - g) * c.dv))
              << isa_name(isa) << " " << label(c) << " heads from " << g << ", token " << t;
      }
    }
  }
}

// ---- depth: positions in several 256-position chunks (attend_tiled.h) ----

namespace {

// Depths around the chunk boundaries (255 | 256 | 257, two and three
// chunks), for the shapes decode streams (Qwen3.5's 4 heads of 256, Qwen2's
// 7 of 64, an odd width) and MLA's latent rows, over the cache types.
std::vector<Case> deep_cases() {
  std::vector<Case> out;
  struct Shape {
    int group;
    int64_t dk, dv;
  };
  const Shape shapes[] = {{4, 256, 256}, {7, 64, 64}, {3, 20, 24}, {16, 576, 512}};
  for (DType type : {DType::F16, DType::Q8_0, DType::F32, DType::BF16})
    for (const Shape& s : shapes) {
      if (type == DType::Q8_0 && (s.dk % 32 != 0 || s.dv % 32 != 0)) continue;
      if (s.dk == 576 && type != DType::F16) continue;  // keep the float64 loops short
      for (int n_tokens : {1, 3, 6})
        for (int n_pos0 : {255, 256, 257, 600}) out.push_back({type, s.group, s.dk, s.dv, n_tokens, n_pos0});
    }
  return out;
}

// The tile through the two-step form: every chunk's partial, computed in
// reverse order (as threads may finish them), then the merge.
std::vector<float> run_by_chunks(const Problem& pr, const KernelTable& k) {
  const Case& c = pr.c;
  std::vector<float> out(static_cast<size_t>(c.n_tokens * c.group * c.dv), -7.0f);
  AttendTile a;
  a.q = pr.q.data();
  a.q_stride = c.group * c.dk;
  a.out = out.data();
  a.out_stride = c.group * c.dv;
  a.n_tokens = c.n_tokens;
  a.group = c.group;
  a.n_pos0 = c.n_pos0;
  a.dk = c.dk;
  a.dv = c.dv;
  a.keys = pr.keys.rows;
  a.values = pr.values.rows;
  a.scale = pr.scale();
  const int64_t n_q = c.n_tokens * c.group, n_chunks = attend_chunks(a), part = attend_part_floats(n_q, c.dv);
  EXPECT_EQ(n_chunks, (c.n_pos0 + c.n_tokens - 2) / kAttendChunk + 1);
  std::vector<float> parts(static_cast<size_t>(n_chunks * part), 123.0f);
  std::vector<float> scratch(static_cast<size_t>(attend_chunk_scratch(n_q, c.dk, c.dv)));
  for (int64_t ch = n_chunks - 1; ch >= 0; --ch) k.attend_chunk(a, ch, parts.data() + ch * part, scratch.data());
  k.attend_merge(a, parts.data());
  return out;
}

}  // namespace

// Within float rounding of the float64 attention across chunks: the merge
// rescales the chunks' partials correctly.
TEST(AttentionDepth, ChunkedKernelMatchesFloat64Attention) {
  uint32_t seed = 500;
  for (const Case& c : deep_cases()) {
    if (c.n_tokens == 3) continue;  // the float64 loops are the slow part
    Problem pr(c, seed++);
    ASSERT_NO_FATAL_FAILURE(expect_float64_attention(pr));
  }
}

// The chunk partials merged (what decode spreads over threads) give the
// whole kernel's bits, and every ISA gives the reference's bits either way.
TEST(AttentionDepth, ChunkPartialsMergeToTheWholeKernelOnEveryIsa) {
  uint32_t seed = 700;
  for (const Case& c : deep_cases()) {
    Problem pr(c, seed++);
    const std::vector<float> want = pr.run(ref_kernels());
    for (Isa isa : available_isas()) {
      const KernelTable& k = kernel_table(isa);
      const std::vector<float> whole = pr.run(k), split = run_by_chunks(pr, k);
      ASSERT_EQ(0, std::memcmp(whole.data(), want.data(), sizeof(float) * want.size())) << isa_name(isa) << " " << label(c);
      ASSERT_EQ(0, std::memcmp(split.data(), want.data(), sizeof(float) * want.size()))
          << isa_name(isa) << " by chunks " << label(c);
    }
  }
}

// Decode equals prefill at depth: each token alone (the streaming path for
// small groups) gives the bits it gets inside the whole tile (the converted
// path), and so does a split of the group.
TEST(AttentionDepth, TokenAloneEqualsItsTile) {
  uint32_t seed = 900;
  for (const Case& c : deep_cases()) {
    if (c.n_tokens == 1) continue;
    Problem pr(c, seed++);
    for (Isa isa : available_isas()) {
      const KernelTable& k = kernel_table(isa);
      const std::vector<float> all = pr.run(k);
      const size_t per_token = static_cast<size_t>(c.group * c.dv);
      for (int t = 0; t < c.n_tokens; ++t) {
        const std::vector<float> one = pr.run(k, t, 1, 0, c.group);
        ASSERT_EQ(0, std::memcmp(one.data(), all.data() + t * per_token, sizeof(float) * per_token))
            << isa_name(isa) << " " << label(c) << " token " << t << " alone";
        const std::vector<float> head = pr.run(k, t, 1, c.group - 1, c.group);
        ASSERT_EQ(0, std::memcmp(head.data(), all.data() + t * per_token + (c.group - 1) * c.dv, sizeof(float) * c.dv))
            << isa_name(isa) << " " << label(c) << " token " << t << " last head alone";
      }
    }
  }
}
