// KvCache — the keys and values of every layer for all running sequences, in
// one pool of fixed-size blocks (paged attention, as vLLM does it).
//
// Blocks. The pool holds `n_blocks` blocks of kBlockTokens positions each; a
// block holds those positions' key and value rows for every layer, stored
// as the cache type (f32, f16, bf16 or q8_0; keys and values may differ). A
// sequence owns a block table: block i holds its positions [32i, 32i + 32).
// It takes blocks as it grows and returns them when it shrinks or ends.
// Memory is the pool's, whatever the number of sequences or their context:
// the pool is one anonymous mapping whose pages become resident as blocks
// are first used, so resident memory never exceeds the budget.
//
// Prefix cache. A full block is immutable and registered under its content:
// the serial number of the block before it (0 for the first) and its 32
// token ids. Two blocks with the same content hold the same keys and values
// bit for bit, because every kernel computes a token's row with the same
// arithmetic whatever batch it came in. A new sequence takes the longest
// chain of registered blocks matching its tokens (attach_prefix), in any
// slot; lookups compare the tokens, never only a hash. Blocks nobody uses
// stay registered in least-recently-used order and are evicted only when the
// pool needs a block; a sequence's blocks are returned last-first, so the
// end of a conversation goes before its shared beginning. A block that is
// shared and must change (truncate() inside it) is copied first.
//
// The layout inside a block, per layer: kBlockTokens key rows, then
// kBlockTokens value rows. A row of width w takes row_bytes(type, w) bytes.
// The MLA latent cache has keys only (value width 0); its values are read
// from the key rows.
//
// Owned by the engine thread; not thread-safe. It lives in the model layer
// because the forward pass writes it; the runtime's scheduler decides which
// sequence uses which slot and when a sequence must give way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/paged_rows.h"
#include "model/batch.h"
#include "model/spec.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace volga {

struct KvCacheOptions {
  int n_seq = 1;             // sequence ids 0..n_seq-1
  int n_ctx = 4096;          // most positions of one sequence
  int64_t n_blocks = 0;      // pool size; 0: enough for n_seq full sequences
  DType type_k = DType::F16;
  DType type_v = DType::F16;
  // Hybrid models: recurrent-state snapshots kept for prefix reuse (each
  // spec.recurrent_state_floats() floats); -1: default_snapshots(n_seq).
  int n_snapshots = -1;
  // Pipeline stages hold only their own layers: [first_layer, first_layer +
  // n_layers) of the model's (n_layers 0: all). Layer arguments stay the
  // model's numbers.
  int64_t first_layer = 0;
  int64_t n_layers = 0;
};

// Thrown when the pool has no block left for a forward pass.
class KvFullError : public Error {
 public:
  using Error::Error;
};

class KvCache {
 public:
  static constexpr int kBlockTokens = kKvBlockTokens;

  // The f32 cache with room for n_seq full sequences (tools and tests).
  KvCache(const ModelSpec& spec, int n_seq, int n_ctx);
  KvCache(const ModelSpec& spec, const KvCacheOptions& opts);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // Bytes of one block (all layers, keys and values) for these types.
  static int64_t block_bytes_for(const ModelSpec& spec, DType type_k, DType type_v);
  // Throws volga::Error when the model cannot store its cache as these types
  // (q8_0 needs head widths that are multiples of 32), naming the numbers.
  static void check_types(const ModelSpec& spec, DType type_k, DType type_v);

  int n_seq() const { return static_cast<int>(seqs_.size()); }
  int n_ctx() const { return n_ctx_; }
  DType type_k() const { return type_k_; }
  DType type_v() const { return type_v_; }
  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_bytes() const { return block_bytes_; }
  int64_t bytes() const { return n_blocks_ * block_bytes_; }
  // Positions stored for a sequence.
  int length(int seq) const { return seq_at(seq).length; }
  // Token ids of a sequence's positions (those written through commit()).
  const std::vector<int32_t>& tokens(int seq) const { return seq_at(seq).tokens; }

  // Blocks in use by some sequence, registered but unused (evictable), and
  // free. used + cached + free == n_blocks.
  int64_t used_blocks() const { return n_blocks_ - static_cast<int64_t>(free_.size()) - lru_size_; }
  int64_t cached_blocks() const { return lru_size_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  // Blocks a sequence could still take: free plus evictable.
  int64_t available_blocks() const { return free_blocks() + cached_blocks(); }
  // Blocks a sequence of n positions needs.
  static int64_t blocks_for(int64_t n) { return (n + kBlockTokens - 1) / kBlockTokens; }
  int64_t seq_blocks(int seq) const { return static_cast<int64_t>(seq_at(seq).blocks.size()); }

  // Forget positions >= n of a sequence (n = 0 frees it for a new request).
  // A registered block that keeps only part of its positions is copied
  // first; when no block is left for the copy, the sequence is cut back to
  // the start of that block instead. A hybrid model's sequence goes back to
  // the longest boundary <= n with a state snapshot, else to 0. Returns the
  // new length.
  int truncate(int seq, int n);

  // Gives a sequence blocks for positions [0, n). False, and nothing taken,
  // when the pool cannot provide them.
  bool reserve(int seq, int n);

  // An empty sequence takes the longest chain of registered blocks that
  // matches tokens[0, n): whole blocks only, at most `limit` positions.
  // Returns the positions it now holds (a multiple of kBlockTokens).
  int attach_prefix(int seq, const int32_t* tokens, int n, int limit);
  // Positions attach_prefix would find, without taking anything.
  int cached_prefix(const int32_t* tokens, int n, int limit) const;

  // Validates a batch against the cache (token ids are the model's to check)
  // and reserves its blocks: positions must continue each sequence and stay
  // within n_ctx. Throws volga::Error, or KvFullError when the pool is full.
  void prepare(const Batch& batch);
  // Stores one position's key and value rows of a layer (converted to the
  // cache types). The position's block must have been reserved.
  void write(int64_t layer, int seq, int pos, const float* key, const float* value);
  // After a successful forward pass: the batch's positions count as stored,
  // with their token ids; blocks that became full are registered (or
  // replaced by an identical registered block).
  void commit(const Batch& batch);

  // Hybrid models (Gated DeltaNet layers): each sequence also owns a
  // recurrent state of spec.recurrent_state_floats() floats beside its
  // blocks, valid for its `length` positions (the model zeroes it when a
  // sequence starts at position 0). A state cannot be rewound, so for these
  // models truncate() to a length inside the sequence goes back to the
  // nearest snapshot (below) or forgets it entirely (returns 0: recompute). `layer` arguments count the layers with a KV
  // cache only (ModelSpec::kv_layer_index).
  //
  // Snapshots. So that hybrid models reuse prefixes too, the cache keeps up
  // to n_snapshots copies of a sequence's state taken at block boundaries,
  // each filed under the serial of the registered block that ends there (a
  // serial names its whole chain of tokens). In every forward pass each
  // sequence of the batch, covering positions [p0, p1), is snapshotted at
  // the boundary b = 32 * floor((p1 - 1) / 32) when p0 <= b and b > 0: the
  // last boundary strictly before its last token, which is the one a later
  // request with the same prompt can reuse (its last token is always
  // computed), and during decode every 32nd position. prepare() decides;
  // when b > p0 the model copies each layer's state after the token at b - 1
  // into snapshot_target(); commit() files it. The prefix cache (attach_prefix,
  // cached_prefix) then stops at the longest matched boundary that has a
  // snapshot and restores it. Least recently used snapshots go first; one
  // whose block is evicted goes with it. Because every kernel computes a
  // token the same way in any batch, the restored state is bit for bit the
  // state a cold run reaches there.
  bool has_recurrent_state() const { return state_floats_ > 0; }
  float* recurrent_state(int seq);
  // The boundary at which this batch snapshots `seq` after the token at
  // boundary - 1, or -1 (none, or taken already in prepare()).
  int snapshot_boundary(int seq) const;
  // Where the model writes that snapshot: recurrent_state_floats() floats,
  // laid out as recurrent_state(). nullptr when snapshot_boundary is -1.
  float* snapshot_target(int seq);
  int n_snapshots() const { return static_cast<int>(snapshots_.size()); }
  int max_snapshots() const { return max_snapshots_; }
  // The count a cache for n_seq sequences keeps unless told otherwise.
  static int default_snapshots(int n_seq) { return 2 * n_seq + 2; }

  // Key/value rows of a sequence's head in a layer. Widths are in elements:
  // key rows of head h start at element h * head_width of the key row.
  PagedRows keys(int64_t layer, int seq, int64_t first_elem) const;
  PagedRows values(int64_t layer, int seq, int64_t first_elem) const;

  // Pipeline stages (runtime/mpi_pipeline). The first stage's cache decides
  // which block holds which positions; the caches of the later stages, with
  // the same number of blocks but other layers, mirror its block tables and
  // the block copies truncate() makes, so the same block ids hold the same
  // positions on every stage.
  void log_block_copies(bool on) { log_copies_ = on; }
  // (from, to) block copies since the last call.
  std::vector<std::pair<int32_t, int32_t>> take_block_copies() { return std::move(copies_); }
  const std::vector<int32_t>& block_table(int seq) const { return seq_at(seq).blocks; }
  // Sets a sequence's block table and length as the first stage has them
  // (before its forward pass); throws volga::Error on a block id out of range.
  void mirror_sequence(int seq, const int32_t* blocks, size_t n_blocks, int length);
  void copy_block(int32_t from, int32_t to);

  // Counters for metrics.
  int64_t evictions() const { return evictions_; }

 private:
  struct Snapshot {
    std::vector<float> state;
    uint64_t last_use = 0;
  };
  struct PendingSnapshot {
    int boundary = -1;
    bool taken = false;  // already a copy of the state (boundary == the batch's first position)
    std::vector<float> state;
  };
  struct Seq {
    std::vector<int32_t> blocks;
    std::vector<int32_t> tokens;
    int length = 0;
    std::vector<float> state;  // recurrent state (hybrid models), allocated on first use
  };
  struct Block {
    int32_t ref = 0;
    uint64_t serial = 0;         // 0: not registered
    uint64_t parent = 0;         // serial of the block before it
    uint64_t hash = 0;
    int32_t prev = -1, next = -1;  // LRU links while evictable
    bool in_lru = false;
  };

  const Seq& seq_at(int seq) const;
  Seq& seq_at(int seq) { return const_cast<Seq&>(static_cast<const KvCache*>(this)->seq_at(seq)); }
  uint8_t* block_ptr(int32_t id) const { return pool_ + static_cast<int64_t>(id) * block_bytes_; }
  int32_t take_block();           // -1 when none
  void release_block(int32_t id);
  void unregister(int32_t id);  // forget a block's content: it will not be found again
  void lru_push(int32_t id);
  void lru_remove(int32_t id);
  int32_t find_registered(uint64_t parent, const int32_t* tokens) const;
  // Walks the registered chain matching tokens[0, end): the longest length
  // usable (with a snapshot at its end for hybrid models) and that block chain.
  int match_chain(const int32_t* tokens, int end, std::vector<int32_t>* chain) const;
  void plan_snapshots(const Batch& batch);
  int restore_snapshot(Seq& s, int n);  // the longest boundary <= n with a snapshot (state restored), or 0
  void file_snapshots();
  void register_block(Seq& s, size_t index);

  int n_ctx_;
  DType type_k_, type_v_;
  int64_t state_floats_ = 0;
  int64_t first_layer_ = 0;
  bool log_copies_ = false;
  std::vector<std::pair<int32_t, int32_t>> copies_;
  int64_t n_layer_, k_width_, v_width_, k_row_, v_row_, layer_bytes_, block_bytes_, n_blocks_;
  uint8_t* pool_ = nullptr;
  size_t map_bytes_ = 0;
  std::vector<Seq> seqs_;
  std::vector<Block> meta_;
  std::vector<int32_t> block_tokens_;  // n_blocks x kBlockTokens: tokens of registered blocks
  std::vector<int32_t> free_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  int64_t lru_size_ = 0;
  uint64_t next_serial_ = 1;
  int64_t evictions_ = 0;
  std::unordered_multimap<uint64_t, int32_t> registry_;  // content hash -> block
  int max_snapshots_ = 0;
  uint64_t snapshot_clock_ = 0;
  std::unordered_map<uint64_t, Snapshot> snapshots_;  // block serial -> state after that block
  std::vector<PendingSnapshot> pending_;                // per sequence, this batch's
};

}  // namespace volga
