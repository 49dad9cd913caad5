// KvCache's block pool: allocation and return, sharing of registered blocks,
// eviction in least-recently-used order, token comparison behind the hash,
// copy-on-write when a shared block is cut, and the budget arithmetic. The
// forward pass over the pool is covered by test_scheduler.cpp and the
// kernel tests (paged attention); here the bookkeeping alone.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "model/kv_cache.h"
#include "runtime/kv_budget.h"
#include "util/error.h"

namespace volga {
namespace {

constexpr int B = KvCache::kBlockTokens;

ModelSpec small_spec() {
  ModelSpec s;
  s.arch = Arch::Qwen2;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim_k = s.head_dim_v = 32;
  s.n_vocab = 1000;
  return s;
}

std::vector<int32_t> tokens(int32_t from, int n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), from);
  return v;
}

// Appends n positions of `ids` to a sequence the way a forward pass does
// (prepare, one key/value row per layer and position, commit). Keys are the
// token id, so a block's content shows where it came from.
void feed(KvCache& c, int seq, const std::vector<int32_t>& ids, const ModelSpec& s) {
  Batch batch;
  for (size_t i = static_cast<size_t>(c.length(seq)); i < ids.size(); ++i)
    batch.add(ids[i], static_cast<int32_t>(i), seq, false);
  c.prepare(batch);
  std::vector<float> k(static_cast<size_t>(s.kv_key_width())), v(static_cast<size_t>(s.kv_value_width()));
  for (const BatchToken& t : batch.tokens)
    for (int64_t l = 0; l < s.n_layer; ++l) {
      std::fill(k.begin(), k.end(), static_cast<float>(t.token));
      std::fill(v.begin(), v.end(), static_cast<float>(-t.token));
      c.write(l, t.seq, t.pos, k.data(), v.data());
    }
  c.commit(batch);
}

float key_at(const KvCache& c, int seq, int pos) {
  const PagedRows r = c.keys(1, seq, 0);
  const uint8_t* row = r.block(pos / B) + (pos % B) * r.row_bytes;
  float x;
  std::memcpy(&x, row, sizeof x);
  return x;
}

KvCache make(const ModelSpec& s, int n_seq, int64_t n_blocks) {
  KvCacheOptions o;
  o.n_seq = n_seq;
  o.n_ctx = 1024;
  o.n_blocks = n_blocks;
  o.type_k = o.type_v = DType::F32;
  return KvCache(s, o);
}

TEST(KvCache, SequencesTakeAndReturnBlocks) {
  const ModelSpec s = small_spec();
  KvCache c = make(s, 2, 8);
  EXPECT_EQ(c.free_blocks(), 8);
  feed(c, 0, tokens(1, B + 5), s);  // two blocks, one full
  EXPECT_EQ(c.seq_blocks(0), 2);
  EXPECT_EQ(c.used_blocks(), 2);
  EXPECT_EQ(c.length(0), B + 5);
  EXPECT_EQ(key_at(c, 0, B + 4), static_cast<float>(B + 5));
  c.truncate(0, 0);
  // The full block stays cached for reuse; the partial one is free again.
  EXPECT_EQ(c.used_blocks(), 0);
  EXPECT_EQ(c.cached_blocks(), 1);
  EXPECT_EQ(c.free_blocks(), 7);
  EXPECT_EQ(c.cached_blocks() + c.free_blocks() + c.used_blocks(), c.n_blocks());
}

TEST(KvCache, PrefixIsFoundInAnySequenceByItsTokens) {
  const ModelSpec s = small_spec();
  KvCache c = make(s, 2, 8);
  const auto ids = tokens(100, 2 * B + 3);
  feed(c, 0, ids, s);
  // Another sequence, while the first still runs: shares both full blocks.
  EXPECT_EQ(c.cached_prefix(ids.data(), static_cast<int>(ids.size()), 1000), 2 * B);
  EXPECT_EQ(c.attach_prefix(1, ids.data(), static_cast<int>(ids.size()), 1000), 2 * B);
  EXPECT_EQ(c.used_blocks(), 3);  // shared, not copied
  EXPECT_EQ(key_at(c, 1, 2 * B - 1), key_at(c, 0, 2 * B - 1));
  // `limit` keeps the last prompt token out; a block is taken whole or not at all.
  c.truncate(1, 0);
  EXPECT_EQ(c.attach_prefix(1, ids.data(), 2 * B, 2 * B - 1), B);
  c.truncate(1, 0);
  // Same tokens after a different first block: not a match (the chain differs).
  auto other = ids;
  other[0] = 999;
  EXPECT_EQ(c.cached_prefix(other.data(), static_cast<int>(other.size()), 1000), 0);
  // One token different inside the second block: only the first matches.
  other = ids;
  other[B + 7] = 998;
  EXPECT_EQ(c.cached_prefix(other.data(), static_cast<int>(other.size()), 1000), B);
}

TEST(KvCache, LeastRecentlyUsedBlocksAreEvictedFirstAndEndsBeforeBeginnings) {
  const ModelSpec s = small_spec();
  KvCache c = make(s, 1, 4);
  const auto a = tokens(1, 2 * B), b = tokens(5000 % 900, B);
  feed(c, 0, a, s);
  c.truncate(0, 0);  // a's two blocks cached; its second is evicted before its first
  feed(c, 0, b, s);
  c.truncate(0, 0);
  EXPECT_EQ(c.cached_blocks(), 3);
  feed(c, 0, tokens(300, 2 * B), s);  // needs two blocks: one free, then the oldest cached
  EXPECT_EQ(c.evictions(), 1);
  EXPECT_EQ(c.cached_prefix(a.data(), 2 * B, 1000), B);  // a's end went first, its start stays
  EXPECT_EQ(c.cached_prefix(b.data(), B, 1000), B);
}

TEST(KvCache, HashCollisionsAreSettledByTheTokens) {
  // Every lookup compares the block's tokens and its parent, never only the
  // hash: blocks registered under many contents are told apart exactly.
  const ModelSpec s = small_spec();
  KvCache c = make(s, 1, 64);
  for (int i = 0; i < 20; ++i) {
    auto ids = tokens(0, B);
    ids[static_cast<size_t>(i % B)] = 500 + i;
    feed(c, 0, ids, s);
    c.truncate(0, 0);
  }
  for (int i = 0; i < 20; ++i) {
    auto ids = tokens(0, B);
    ids[static_cast<size_t>(i % B)] = 500 + i;
    ASSERT_EQ(c.attach_prefix(0, ids.data(), B, B), B);
    EXPECT_EQ(key_at(c, 0, i % B), static_cast<float>(500 + i));
    c.truncate(0, 0);
  }
}

TEST(KvCache, CuttingASharedBlockCopiesItFirst) {
  const ModelSpec s = small_spec();
  KvCache c = make(s, 2, 8);
  const auto ids = tokens(10, B + 1);
  feed(c, 0, ids, s);
  c.attach_prefix(1, ids.data(), B, B);
  c.truncate(1, 10);  // keeps 10 positions of the shared block: needs its own copy
  EXPECT_EQ(c.length(1), 10);
  auto next = tokens(10, 10);
  next.push_back(777);
  feed(c, 1, next, s);
  EXPECT_EQ(key_at(c, 1, 10), 777.0f);
  EXPECT_EQ(key_at(c, 0, 10), 20.0f);  // the other sequence's block is untouched
  EXPECT_EQ(key_at(c, 1, 9), 19.0f);   // the copy kept the first positions
}

TEST(KvCache, FullPoolRefusesWithoutTakingAnything) {
  const ModelSpec s = small_spec();
  KvCache c = make(s, 2, 2);
  feed(c, 0, tokens(1, B + 2), s);
  Batch batch;
  for (int i = 0; i < B + 1; ++i) batch.add(i, i, 1, false);
  EXPECT_THROW(c.prepare(batch), KvFullError);
  EXPECT_EQ(c.seq_blocks(1), 0);
  EXPECT_EQ(c.length(1), 0);
}

TEST(KvCache, CacheTypesNeedWidthsTheyCanStore) {
  ModelSpec s = small_spec();
  s.head_dim_k = s.head_dim_v = 40;
  EXPECT_THROW(KvCache::check_types(s, DType::Q8_0, DType::F16), Error);
  EXPECT_NO_THROW(KvCache::check_types(s, DType::F16, DType::BF16));
  EXPECT_THROW(KvCache::check_types(s, DType::Q4_0, DType::F16), Error);
  s.head_dim_k = s.head_dim_v = 64;
  EXPECT_NO_THROW(KvCache::check_types(s, DType::Q8_0, DType::Q8_0));
  // Bytes per block: 2 layers x 32 positions x (2 heads x 64) elements x (key + value).
  EXPECT_EQ(KvCache::block_bytes_for(s, DType::F16, DType::F16), 2 * 32 * 128 * 2 * 2);
  EXPECT_EQ(KvCache::block_bytes_for(s, DType::Q8_0, DType::Q8_0), 2 * 32 * (128 / 32 * 34) * 2);
}

TEST(KvBudget, SizesAndTheRequestedBudget) {
  EXPECT_EQ(parse_size("8G"), int64_t(8) << 30);
  EXPECT_EQ(parse_size("512MiB"), int64_t(512) << 20);
  EXPECT_EQ(parse_size("1.5g"), int64_t(3) << 29);
  EXPECT_EQ(parse_size("4096"), 4096);
  for (const char* bad : {"", "G", "-1G", "0", "12 apples", "1e30T"}) EXPECT_THROW(parse_size(bad), Error) << bad;
  const ModelSpec s = small_spec();
  const int64_t bb = KvCache::block_bytes_for(s, DType::F16, DType::F16);
  KvBudget b = plan_kv_budget(s, DType::F16, DType::F16, 4, 1000, 10 * bb + 5, 0);
  EXPECT_EQ(b.n_blocks, 10);
  EXPECT_EQ(b.positions(), 10 * B);
  EXPECT_THROW(plan_kv_budget(s, DType::F16, DType::F16, 4, 1000, bb - 1, 0), Error);
  // By default: room for every sequence at full context when memory allows.
  b = plan_kv_budget(s, DType::F16, DType::F16, 4, 1000, 0, 0);
  EXPECT_EQ(b.n_blocks, 4 * KvCache::blocks_for(1000));
}

}  // namespace
}  // namespace volga
