#include "runtime/pipeline_message.h"

#include <climits>
#include <cstring>
#include <string>

#include "tensor/half.h"
#include "util/error.h"

namespace volga {

namespace {

template <typename T>
void put(std::vector<uint8_t>& buf, const T* v, size_t n) {
  const size_t at = buf.size();
  buf.resize(at + n * sizeof(T));
  if (n) std::memcpy(buf.data() + at, v, n * sizeof(T));
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  template <typename T>
  void get(T* v, size_t n) {
    if (n > (b_.size() - at_) / sizeof(T)) throw Error("pipeline: a truncated message");
    if (n) std::memcpy(v, b_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
  }
  size_t offset() const { return at_; }
  bool done() const { return at_ == b_.size(); }

 private:
  const std::vector<uint8_t>& b_;
  size_t at_ = 0;
};

constexpr int64_t kMaxCount = int64_t{1} << 28;

}  // namespace

HiddenType parse_hidden_type(const std::string& name) {
  if (name == "f32") return HiddenType::F32;
  if (name == "f16") return HiddenType::F16;
  if (name == "bf16") return HiddenType::BF16;
  throw Error("--mpi-hidden '" + name + "': use f32 (exact), bf16 or f16");
}

const char* hidden_type_name(HiddenType t) {
  return t == HiddenType::F16 ? "f16" : t == HiddenType::BF16 ? "bf16" : "f32";
}

size_t hidden_bytes(HiddenType t) { return t == HiddenType::F32 ? 4 : 2; }

void write_hidden(uint8_t* at, const float* x, size_t n, HiddenType t) {
  if (t == HiddenType::F32) {
    if (n) std::memcpy(at, x, n * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = t == HiddenType::F16 ? fp32_to_fp16(x[i]) : fp32_to_bf16(x[i]);
    std::memcpy(at + 2 * i, &h, 2);
  }
}

void put_hidden(std::vector<uint8_t>& out, const float* x, size_t n, HiddenType t) {
  const size_t at = out.size();
  out.resize(at + n * hidden_bytes(t));
  write_hidden(out.data() + at, x, n, t);
}

void read_hidden(const uint8_t* from, float* x, size_t n, HiddenType t) {
  if (t == HiddenType::F32) {
    if (n) std::memcpy(x, from, n * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, from + 2 * i, 2);
    x[i] = t == HiddenType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
}

std::vector<uint8_t> encode_stage_forward(const Batch& batch, KvCache& cache, const std::vector<float>& x,
                                          int64_t n_embd, HiddenType type) {
  StageHeader h;
  h.op = static_cast<int64_t>(StageOp::Forward);
  h.cache_key = reinterpret_cast<uintptr_t>(&cache);
  h.n_seq = cache.n_seq();
  h.n_ctx = cache.n_ctx();
  h.n_blocks = cache.n_blocks();
  h.type_k = static_cast<int64_t>(cache.type_k());
  h.type_v = static_cast<int64_t>(cache.type_v());
  h.n_tokens = static_cast<int64_t>(batch.size());
  h.n_embd = n_embd;
  h.hidden_type = static_cast<int64_t>(type);
  std::vector<int32_t> tables;
  std::vector<bool> seen(static_cast<size_t>(cache.n_seq()), false);
  for (const BatchToken& t : batch.tokens) {
    if (seen[static_cast<size_t>(t.seq)]) continue;
    seen[static_cast<size_t>(t.seq)] = true;
    const std::vector<int32_t>& blocks = cache.block_table(t.seq);
    tables.push_back(t.seq);
    tables.push_back(t.pos);  // the length before this batch: where its first token goes
    tables.push_back(static_cast<int32_t>(blocks.size()));
    tables.insert(tables.end(), blocks.begin(), blocks.end());
  }
  h.n_table_ints = static_cast<int64_t>(tables.size());
  const std::vector<std::pair<int32_t, int32_t>> copies = cache.take_block_copies();
  h.n_copies = static_cast<int64_t>(copies.size());
  if (x.size() != batch.size() * static_cast<size_t>(n_embd)) throw Error("internal: hidden states of the wrong size");
  std::vector<uint8_t> buf;
  put(buf, &h, 1);
  put(buf, batch.tokens.data(), batch.size());
  put(buf, tables.data(), tables.size());
  for (const auto& [from, to] : copies) {
    const int32_t pair[2] = {from, to};
    put(buf, pair, 2);
  }
  put_hidden(buf, x.data(), x.size(), type);
  return buf;
}

std::vector<uint8_t> encode_stage_stop() {
  StageHeader h;
  h.op = static_cast<int64_t>(StageOp::Stop);
  std::vector<uint8_t> buf;
  put(buf, &h, 1);
  return buf;
}

StageMessage decode_stage_message(const std::vector<uint8_t>& bytes) {
  StageMessage m;
  Reader in(bytes);
  StageHeader& h = m.header;
  in.get(&h, 1);
  if (h.op == static_cast<int64_t>(StageOp::Stop)) return m;
  auto bad = [](const char* what) { throw Error(std::string("pipeline: a malformed message (") + what + ")"); };
  if (h.op != static_cast<int64_t>(StageOp::Forward)) bad("operation");
  if (h.n_tokens <= 0 || h.n_tokens > kMaxCount || h.n_table_ints < 0 || h.n_table_ints > kMaxCount ||
      h.n_copies < 0 || h.n_copies > kMaxCount || h.n_embd <= 0 || h.n_embd > (1 << 20) || h.n_seq <= 0 ||
      h.n_seq > (1 << 20) || h.n_ctx <= 0 || h.n_ctx > (1 << 26) || h.n_blocks <= 0 || h.n_blocks > INT32_MAX ||
      h.type_k < 0 || h.type_k > 255 || h.type_v < 0 || h.type_v > 255 || h.hidden_type < 0 || h.hidden_type > 2)
    bad("sizes");
  m.batch.tokens.resize(static_cast<size_t>(h.n_tokens));
  in.get(m.batch.tokens.data(), m.batch.tokens.size());
  for (const BatchToken& t : m.batch.tokens)
    if (t.seq < 0 || t.seq >= h.n_seq || t.pos < 0 || t.pos >= h.n_ctx) bad("token");
  m.tables.resize(static_cast<size_t>(h.n_table_ints));
  in.get(m.tables.data(), m.tables.size());
  for (size_t i = 0; i < m.tables.size();) {
    if (m.tables.size() - i < 3) bad("block table");
    const int32_t n = m.tables[i + 2];
    if (n < 0 || static_cast<size_t>(n) > m.tables.size() - i - 3) bad("block table");
    i += 3 + static_cast<size_t>(n);
  }
  m.copies.resize(static_cast<size_t>(h.n_copies));
  for (auto& c : m.copies) {
    int32_t pair[2];
    in.get(pair, 2);
    c = {pair[0], pair[1]};
  }
  m.x_offset = in.offset();
  const HiddenType type = static_cast<HiddenType>(h.hidden_type);
  const size_t n = static_cast<size_t>(h.n_tokens * h.n_embd);
  if (bytes.size() - m.x_offset != n * hidden_bytes(type)) bad("hidden states");
  m.x.resize(n);
  read_hidden(bytes.data() + m.x_offset, m.x.data(), n, type);
  return m;
}

KvCacheOptions stage_cache_options(const StageHeader& h, int64_t first_layer, int64_t n_layers) {
  KvCacheOptions o;
  o.n_seq = static_cast<int>(h.n_seq);
  o.n_ctx = static_cast<int>(h.n_ctx);
  o.n_blocks = h.n_blocks;
  o.type_k = static_cast<DType>(h.type_k);
  o.type_v = static_cast<DType>(h.type_v);
  o.first_layer = first_layer;
  o.n_layers = n_layers;
  return o;
}

void mirror_into(const StageMessage& m, KvCache& cache) {
  for (const auto& [from, to] : m.copies) cache.copy_block(from, to);
  for (size_t i = 0; i + 3 <= m.tables.size();) {
    const int32_t seq = m.tables[i], length = m.tables[i + 1], n = m.tables[i + 2];
    cache.mirror_sequence(seq, &m.tables[i + 3], static_cast<size_t>(n), length);
    i += 3 + static_cast<size_t>(n);
  }
  for (const BatchToken& t : m.batch.tokens)  // every position written or read has its block
    if (cache.seq_blocks(t.seq) < KvCache::blocks_for(static_cast<int64_t>(t.pos) + 1))
      throw Error("pipeline: a malformed message (a token outside its block table)");
}

}  // namespace volga
