#include "model/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "tensor/quant.h"

namespace volga {

namespace {

bool cache_type_supported(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0;
}

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 step over the running hash
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

uint64_t content_hash(uint64_t parent, const int32_t* tokens) {
  uint64_t h = mix(0x5EED, parent);
  for (int i = 0; i < KvCache::kBlockTokens; ++i) h = mix(h, static_cast<uint32_t>(tokens[i]));
  return h;
}

}  // namespace

void KvCache::check_types(const ModelSpec& spec, DType type_k, DType type_v) {
  for (DType t : {type_k, type_v})
    if (!cache_type_supported(t))
      throw Error(std::string("KV cache type '") + dtype_name(t) + "' is not supported (use f32, f16, bf16 or q8_0)");
  // A head's rows must start and end on whole blocks of the type (q8_0: 32).
  auto need32 = [](DType t, int64_t width, const char* what) {
    const int64_t block = traits(t).block_size;
    if (width % block != 0)
      throw Error(std::string("a ") + dtype_name(t) + " KV cache needs " + what + " that are multiples of " +
                  std::to_string(block) + "; this model's are " + std::to_string(width) + " (use f16 or bf16)");
  };
  if (spec.is_mla()) {
    need32(type_k, spec.n_lora_kv, "latent widths");
    need32(type_k, spec.n_rot, "rotary widths");
  } else {
    need32(type_k, spec.head_dim_k, "key head widths");
    need32(type_v, spec.head_dim_v, "value head widths");
  }
}

int64_t KvCache::block_bytes_for(const ModelSpec& spec, DType type_k, DType type_v) {
  const int64_t k = row_bytes(type_k, spec.kv_key_width()), v = row_bytes(type_v, spec.kv_value_width());
  return spec.n_kv_layer() * kBlockTokens * (k + v);
}

KvCache::KvCache(const ModelSpec& spec, int n_seq, int n_ctx)
    : KvCache(spec, KvCacheOptions{n_seq, n_ctx, 0, DType::F32, DType::F32}) {}

KvCache::KvCache(const ModelSpec& spec, const KvCacheOptions& o)
    : n_ctx_(o.n_ctx), type_k_(o.type_k), type_v_(o.type_v) {
  if (o.n_seq <= 0 || o.n_ctx <= 0) throw Error("KV cache needs at least one sequence and one position");
  check_types(spec, type_k_, type_v_);
  n_layer_ = o.n_layers > 0 ? o.n_layers : spec.n_kv_layer();
  first_layer_ = o.first_layer;
  if (first_layer_ < 0 || first_layer_ + n_layer_ > spec.n_kv_layer())
    throw Error("KV cache: layers outside the model's " + std::to_string(spec.n_kv_layer()));
  state_floats_ = spec.recurrent_state_floats();
  k_width_ = spec.kv_key_width();
  v_width_ = spec.kv_value_width();
  k_row_ = row_bytes(type_k_, k_width_);
  v_row_ = row_bytes(type_v_, v_width_);
  layer_bytes_ = kBlockTokens * (k_row_ + v_row_);
  block_bytes_ = n_layer_ * layer_bytes_;
  n_blocks_ = o.n_blocks > 0 ? o.n_blocks : o.n_seq * blocks_for(o.n_ctx);
  if (n_blocks_ > INT32_MAX) throw Error("KV cache: too many blocks");
  map_bytes_ = static_cast<size_t>(std::max<int64_t>(1, n_blocks_ * block_bytes_));
  // Pages become resident when first written: memory grows with use up to the budget.
  void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw Error("KV cache: cannot reserve " + std::to_string(map_bytes_ >> 20) + " MiB of memory");
  pool_ = static_cast<uint8_t*>(p);
  seqs_.resize(static_cast<size_t>(o.n_seq));
  pending_.resize(seqs_.size());
  if (state_floats_ > 0) max_snapshots_ = o.n_snapshots >= 0 ? o.n_snapshots : default_snapshots(o.n_seq);
  meta_.resize(static_cast<size_t>(n_blocks_));
  block_tokens_.resize(static_cast<size_t>(n_blocks_ * kBlockTokens));
  free_.reserve(static_cast<size_t>(n_blocks_));
  // Lowest ids on top of the stack: a small run touches the start of the mapping.
  for (int64_t i = n_blocks_ - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

KvCache::~KvCache() {
  if (pool_) munmap(pool_, map_bytes_);
}

const KvCache::Seq& KvCache::seq_at(int seq) const {
  if (seq < 0 || seq >= n_seq())
    throw Error("sequence id " + std::to_string(seq) + " is outside the KV cache (" + std::to_string(n_seq()) +
                " sequences)");
  return seqs_[static_cast<size_t>(seq)];
}

// ---- the block pool ----

void KvCache::lru_push(int32_t id) {
  Block& b = meta_[static_cast<size_t>(id)];
  b.prev = lru_tail_;
  b.next = -1;
  if (lru_tail_ >= 0) meta_[static_cast<size_t>(lru_tail_)].next = id;
  else lru_head_ = id;
  lru_tail_ = id;
  b.in_lru = true;
  ++lru_size_;
}

void KvCache::lru_remove(int32_t id) {
  Block& b = meta_[static_cast<size_t>(id)];
  if (b.prev >= 0) meta_[static_cast<size_t>(b.prev)].next = b.next;
  else lru_head_ = b.next;
  if (b.next >= 0) meta_[static_cast<size_t>(b.next)].prev = b.prev;
  else lru_tail_ = b.prev;
  b.prev = b.next = -1;
  b.in_lru = false;
  --lru_size_;
}

void KvCache::unregister(int32_t id) {
  Block& b = meta_[static_cast<size_t>(id)];
  auto range = registry_.equal_range(b.hash);
  for (auto it = range.first; it != range.second; ++it)
    if (it->second == id) {
      registry_.erase(it);
      break;
    }
  snapshots_.erase(b.serial);  // its chain can no longer be found
  b.serial = 0;
}

int32_t KvCache::take_block() {
  int32_t id = -1;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (lru_head_ >= 0) {  // evict the least recently used cached block
    id = lru_head_;
    lru_remove(id);
    unregister(id);
    ++evictions_;
  } else {
    return -1;
  }
  meta_[static_cast<size_t>(id)].ref = 1;
  return id;
}

void KvCache::release_block(int32_t id) {
  Block& b = meta_[static_cast<size_t>(id)];
  if (--b.ref > 0) return;
  if (b.serial != 0) lru_push(id);  // stays findable until the pool needs it
  else free_.push_back(id);
}

int32_t KvCache::find_registered(uint64_t parent, const int32_t* tokens) const {
  auto range = registry_.equal_range(content_hash(parent, tokens));
  for (auto it = range.first; it != range.second; ++it) {
    const Block& b = meta_[static_cast<size_t>(it->second)];
    const int32_t* held = &block_tokens_[static_cast<size_t>(it->second) * kBlockTokens];
    if (b.parent == parent && std::equal(held, held + kBlockTokens, tokens)) return it->second;
  }
  return -1;
}

void KvCache::register_block(Seq& s, size_t i) {
  const int32_t id = s.blocks[i];
  if (meta_[static_cast<size_t>(id)].serial != 0) return;
  const uint64_t parent = i == 0 ? 0 : meta_[static_cast<size_t>(s.blocks[i - 1])].serial;
  if (i > 0 && parent == 0) return;  // the chain before it is not registered
  const int32_t* tokens = &s.tokens[i * kBlockTokens];
  const int32_t same = find_registered(parent, tokens);
  if (same >= 0) {  // computed twice (two requests at once): keep one copy
    Block& other = meta_[static_cast<size_t>(same)];
    if (other.in_lru) lru_remove(same);
    ++other.ref;
    s.blocks[i] = same;
    release_block(id);
    return;
  }
  Block& b = meta_[static_cast<size_t>(id)];
  b.serial = next_serial_++;
  b.parent = parent;
  b.hash = content_hash(parent, tokens);
  std::copy_n(tokens, kBlockTokens, &block_tokens_[static_cast<size_t>(id) * kBlockTokens]);
  registry_.emplace(b.hash, id);
}

// ---- sequences ----

int KvCache::truncate(int seq, int n) {
  Seq& s = seq_at(seq);
  n = std::clamp(n, 0, s.length);
  if (state_floats_ > 0 && n < s.length) n = restore_snapshot(s, n);  // the state goes back only to a snapshot
  const size_t keep = static_cast<size_t>(blocks_for(n));
  if (n % kBlockTokens != 0 && keep <= s.blocks.size()) {
    // The last kept block will be written again: it must be ours alone and unregistered.
    const int32_t id = s.blocks[keep - 1];
    Block& b = meta_[static_cast<size_t>(id)];
    if (b.ref > 1) {
      const int32_t copy = take_block();
      if (copy < 0) {
        n = n / kBlockTokens * kBlockTokens;  // no room for a copy: recompute that block instead
        return truncate(seq, n);
      }
      std::memcpy(block_ptr(copy), block_ptr(id), static_cast<size_t>(block_bytes_));
      if (log_copies_) copies_.emplace_back(id, copy);
      release_block(id);
      s.blocks[keep - 1] = copy;
    } else if (b.serial != 0) {
      unregister(id);
    }
  }
  while (s.blocks.size() > keep) {  // last block first: it is the first to be evicted
    release_block(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = n;
  if (s.tokens.size() > static_cast<size_t>(n)) s.tokens.resize(static_cast<size_t>(n));
  return n;
}

int KvCache::restore_snapshot(Seq& s, int n) {
  for (int b = n / kBlockTokens * kBlockTokens; b > 0; b -= kBlockTokens) {
    const uint64_t serial = meta_[static_cast<size_t>(s.blocks[static_cast<size_t>(b / kBlockTokens - 1)])].serial;
    auto it = serial != 0 ? snapshots_.find(serial) : snapshots_.end();
    if (it == snapshots_.end()) continue;
    it->second.last_use = ++snapshot_clock_;
    s.state = it->second.state;
    return b;
  }
  return 0;
}

bool KvCache::reserve(int seq, int n) {
  Seq& s = seq_at(seq);
  const size_t need = static_cast<size_t>(blocks_for(n));
  if (need <= s.blocks.size()) return true;
  if (static_cast<int64_t>(need - s.blocks.size()) > available_blocks()) return false;
  while (s.blocks.size() < need) s.blocks.push_back(take_block());
  return true;
}

float* KvCache::recurrent_state(int seq) {
  Seq& s = seq_at(seq);
  if (state_floats_ == 0) throw Error("internal: this model has no recurrent state");
  if (s.state.empty()) s.state.assign(static_cast<size_t>(state_floats_), 0.0f);
  return s.state.data();
}

int KvCache::match_chain(const int32_t* tokens, int end, std::vector<int32_t>* chain) const {
  uint64_t parent = 0;
  int got = 0, usable = 0;
  while (got + kBlockTokens <= end) {
    const int32_t id = find_registered(parent, tokens + got);
    if (id < 0) break;
    parent = meta_[static_cast<size_t>(id)].serial;
    got += kBlockTokens;
    if (chain) chain->push_back(id);
    if (state_floats_ == 0 || snapshots_.count(parent)) usable = got;
  }
  if (chain) chain->resize(static_cast<size_t>(usable / kBlockTokens));
  return usable;
}

int KvCache::cached_prefix(const int32_t* tokens, int n, int limit) const {
  return match_chain(tokens, std::min(n, limit), nullptr);
}

int KvCache::attach_prefix(int seq, const int32_t* tokens, int n, int limit) {
  Seq& s = seq_at(seq);
  if (s.length != 0) truncate(seq, 0);
  std::vector<int32_t> chain;
  match_chain(tokens, std::min({n, limit, n_ctx_}), &chain);
  for (int32_t id : chain) {
    Block& b = meta_[static_cast<size_t>(id)];
    if (b.in_lru) lru_remove(id);
    ++b.ref;
    s.blocks.push_back(id);
    s.length += kBlockTokens;
  }
  s.tokens.assign(tokens, tokens + s.length);
  if (state_floats_ > 0 && !chain.empty()) {
    Snapshot& snap = snapshots_.at(meta_[static_cast<size_t>(chain.back())].serial);
    snap.last_use = ++snapshot_clock_;
    s.state = snap.state;
  }
  return s.length;
}

void KvCache::plan_snapshots(const Batch& batch) {
  for (PendingSnapshot& p : pending_) p.boundary = -1;
  if (max_snapshots_ == 0) return;
  std::vector<std::pair<int, int>> span(seqs_.size(), {-1, -1});  // first, last position in the batch
  for (const BatchToken& t : batch.tokens) {
    auto& sp = span[static_cast<size_t>(t.seq)];
    if (sp.first < 0) sp.first = t.pos;
    sp.second = t.pos;
  }
  for (size_t i = 0; i < seqs_.size(); ++i) {
    const auto [p0, last] = span[i];
    const int b = last / kBlockTokens * kBlockTokens;
    if (p0 < 0 || b <= 0 || b < p0) continue;
    PendingSnapshot& p = pending_[i];
    p.boundary = b;
    p.taken = b == p0;
    if (p.taken) p.state = seqs_[i].state;  // the state before this batch
    else p.state.resize(static_cast<size_t>(state_floats_));
  }
}

int KvCache::snapshot_boundary(int seq) const {
  const PendingSnapshot& p = pending_[static_cast<size_t>(seq)];
  return p.taken ? -1 : p.boundary;
}

float* KvCache::snapshot_target(int seq) {
  return snapshot_boundary(seq) < 0 ? nullptr : pending_[static_cast<size_t>(seq)].state.data();
}

void KvCache::file_snapshots() {
  for (size_t i = 0; i < seqs_.size(); ++i) {
    PendingSnapshot& p = pending_[i];
    if (p.boundary <= 0) continue;
    const size_t block = static_cast<size_t>(p.boundary / kBlockTokens - 1);
    p.boundary = -1;
    const uint64_t serial = block < seqs_[i].blocks.size() ? meta_[static_cast<size_t>(seqs_[i].blocks[block])].serial : 0;
    if (serial == 0) continue;  // the chain is not registered: nobody could find it
    Snapshot& snap = snapshots_[serial];
    snap.state.swap(p.state);
    snap.last_use = ++snapshot_clock_;
  }
  while (static_cast<int>(snapshots_.size()) > max_snapshots_) {
    auto oldest = snapshots_.begin();
    for (auto it = snapshots_.begin(); it != snapshots_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    snapshots_.erase(oldest);
  }
}

void KvCache::prepare(const Batch& batch) {
  if (batch.empty()) throw Error("forward: empty batch");
  std::vector<int> next(seqs_.size());
  for (size_t i = 0; i < seqs_.size(); ++i) next[i] = seqs_[i].length;
  for (const BatchToken& t : batch.tokens) {
    (void)seq_at(t.seq);
    int& n = next[static_cast<size_t>(t.seq)];
    if (t.pos != n)
      throw Error("sequence " + std::to_string(t.seq) + ": token at position " + std::to_string(t.pos) +
                  " does not continue the cache, which ends at " + std::to_string(n));
    if (t.pos >= n_ctx_)
      throw Error("sequence " + std::to_string(t.seq) + " exceeds the context size of " + std::to_string(n_ctx_) +
                  " tokens");
    ++n;
  }
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (next[i] == seqs_[i].length || reserve(static_cast<int>(i), next[i])) continue;
    for (size_t j = 0; j < i; ++j) truncate(static_cast<int>(j), seqs_[j].length);  // give back this call's blocks
    throw KvFullError("the KV cache is full: " + std::to_string(n_blocks_) + " blocks of " +
                      std::to_string(kBlockTokens) + " positions are all in use");
  }
  if (state_floats_ > 0) plan_snapshots(batch);
}

void KvCache::write(int64_t layer, int seq, int pos, const float* key, const float* value) {
  const Seq& s = seqs_[static_cast<size_t>(seq)];
  uint8_t* blk = block_ptr(s.blocks[static_cast<size_t>(pos / kBlockTokens)]) + (layer - first_layer_) * layer_bytes_;
  const int64_t slot = pos % kBlockTokens;
  quantize_row(type_k_, key, blk + slot * k_row_, k_width_);
  if (v_width_ > 0) quantize_row(type_v_, value, blk + kBlockTokens * k_row_ + slot * v_row_, v_width_);
}

void KvCache::commit(const Batch& batch) {
  std::vector<int> before(seqs_.size(), -1);
  for (const BatchToken& t : batch.tokens) {
    Seq& s = seqs_[static_cast<size_t>(t.seq)];
    if (before[static_cast<size_t>(t.seq)] < 0) before[static_cast<size_t>(t.seq)] = s.length;
    s.tokens.resize(static_cast<size_t>(t.pos));  // positions written without ids (tools) read as 0
    s.tokens.push_back(t.token);
    s.length = t.pos + 1;
  }
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (before[i] < 0) continue;
    Seq& s = seqs_[i];
    for (size_t b = static_cast<size_t>(before[i] / kBlockTokens); b < static_cast<size_t>(s.length / kBlockTokens); ++b)
      register_block(s, b);
  }
  if (state_floats_ > 0) file_snapshots();
}

PagedRows KvCache::keys(int64_t layer, int seq, int64_t first_elem) const {
  const Seq& s = seqs_[static_cast<size_t>(seq)];
  return {pool_ + (layer - first_layer_) * layer_bytes_, s.blocks.data(), block_bytes_, k_row_, row_bytes(type_k_, first_elem),
          type_k_};
}

PagedRows KvCache::values(int64_t layer, int seq, int64_t first_elem) const {
  if (v_width_ == 0) return keys(layer, seq, first_elem);  // MLA: values are the latent part of the key rows
  const Seq& s = seqs_[static_cast<size_t>(seq)];
  return {pool_ + (layer - first_layer_) * layer_bytes_ + kBlockTokens * k_row_, s.blocks.data(), block_bytes_, v_row_,
          row_bytes(type_v_, first_elem), type_v_};
}

void KvCache::mirror_sequence(int seq, const int32_t* blocks, size_t n_blocks, int length) {
  Seq& s = seq_at(seq);
  if (length < 0 || length > n_ctx_ || static_cast<int64_t>(n_blocks) > blocks_for(n_ctx_))
    throw Error("KV cache mirror: sequence " + std::to_string(seq) + " is out of range");
  for (size_t i = 0; i < n_blocks; ++i)
    if (blocks[i] < 0 || blocks[i] >= n_blocks_) throw Error("KV cache mirror: block id out of range");
  s.blocks.assign(blocks, blocks + n_blocks);
  s.length = length;
}

void KvCache::copy_block(int32_t from, int32_t to) {
  if (from < 0 || to < 0 || from >= n_blocks_ || to >= n_blocks_)
    throw Error("KV cache mirror: block id out of range");
  std::memcpy(block_ptr(to), block_ptr(from), static_cast<size_t>(block_bytes_));
}

}  // namespace volga
