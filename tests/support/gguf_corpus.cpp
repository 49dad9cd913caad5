#include "gguf_corpus.h"

#include <tuple>

namespace volga::testing {

namespace {

constexpr uint32_t kMagic = 0x46554747;

struct Tensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  uint64_t offset;
};

// Header + one u32 key + tensor infos, then (optionally) aligned data.
std::vector<uint8_t> build(uint32_t version, const std::vector<Tensor>& tensors, uint64_t data_bytes,
                           void (*extra_kv)(Bytes&) = nullptr, uint64_t extra_count = 0) {
  Bytes b;
  b.put(kMagic).put(version).put<uint64_t>(tensors.size()).put<uint64_t>(1 + extra_count);
  b.str("general.architecture").put<uint32_t>(8).str("test");
  if (extra_kv) extra_kv(b);
  for (const Tensor& t : tensors) {
    b.str(t.name).put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) b.put(d);
    b.put(t.type).put(t.offset);
  }
  b.pad(32);
  for (uint64_t i = 0; i < data_bytes; ++i) b.put<uint8_t>(static_cast<uint8_t>(i));
  return b.data;
}

}  // namespace

std::vector<uint8_t> valid_small_gguf() {
  return build(3, {{"a.weight", {8, 2}, 0, 0}, {"b.weight", {4}, 0, 64}}, 80);
}

std::vector<CorpusCase> malformed_corpus() {
  std::vector<CorpusCase> c;
  auto one = [](std::vector<uint64_t> dims, uint32_t type, uint64_t offset, uint64_t data) {
    return build(3, {{"t", std::move(dims), type, offset}}, data);
  };
  {
    auto v = valid_small_gguf();
    v[0] = 'X';
    c.push_back({"bad_magic", v, "bad magic"});
  }
  c.push_back({"empty", {}, "too small"});
  c.push_back({"version1", build(1, {}, 0), "version 1 is obsolete"});
  c.push_back({"version4", build(4, {}, 0), "unsupported GGUF version 4"});
  c.push_back({"big_endian", build(0x03000000, {}, 0), "big-endian"});
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(uint64_t{1} << 60);
    c.push_back({"absurd_kv_count", b.data, "metadata count"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(uint64_t{1} << 60).put<uint64_t>(0);
    c.push_back({"absurd_tensor_count", b.data, "tensor count"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).put<uint64_t>(~uint64_t{0});
    for (int i = 0; i < 32; ++i) b.put<uint8_t>(0);  // enough bytes to pass the count check    c.push_back({"absurd_key_length", b.data, "string length"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("k").put<uint32_t>(13).put<uint32_t>(0);
    c.push_back({"unknown_value_type", b.data, "unknown value type 13"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("k").put<uint32_t>(9)
        .put<uint32_t>(4).put<uint64_t>(uint64_t{1} << 62);
    c.push_back({"absurd_array_count", b.data, "array elements"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("k").put<uint32_t>(9)
        .put<uint32_t>(77).put<uint64_t>(1);
    c.push_back({"unknown_array_type", b.data, "array of unknown type 77"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("k").put<uint32_t>(9);
    for (int i = 0; i < 12; ++i) b.put<uint32_t>(9).put<uint64_t>(1);  // array of array of ...
    b.put<uint32_t>(4).put<uint64_t>(1).put<uint32_t>(7);
    c.push_back({"deep_arrays", b.data, "too deeply"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("flag").put<uint32_t>(7).put<uint8_t>(2);
    c.push_back({"bad_bool", b.data, "invalid bool"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(2);
    b.str("k").put<uint32_t>(4).put<uint32_t>(1).str("k").put<uint32_t>(4).put<uint32_t>(2);
    c.push_back({"duplicate_key", b.data, "duplicate metadata key 'k'"});
  }
  {
    Bytes b;
    b.put(kMagic).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).str("").put<uint32_t>(4).put<uint32_t>(1);
    c.push_back({"empty_key", b.data, "empty key"});
  }
  c.push_back({"zero_dims", one({}, 0, 0, 32), "has 0 dimensions"});
  c.push_back({"five_dims", one({1, 1, 1, 1, 1}, 0, 0, 32), "has 5 dimensions"});
  c.push_back({"zero_dim", one({4, 0}, 0, 0, 32), "invalid dimension 0"});
  c.push_back({"overflowing_dims", one({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 32), "invalid dimension"});
  c.push_back({"unknown_tensor_type", one({4}, 200, 0, 32), "type 200"});
  c.push_back({"unsupported_tensor_type", one({256}, 15, 0, 512), "q8_k"});
  c.push_back({"q3_k_row_not_block_multiple", one({100}, 11, 0, 256), "not a multiple of the q3_k block size"});
  c.push_back({"q2_k_truncated", one({512}, 10, 0, 84), "extends past the end"});  // 2 blocks, 1 present
  c.push_back({"row_not_block_multiple", one({100}, 12, 0, 256), "not a multiple of the q4_k block size"});
  // The lattice i-quants: a partial super-block, and data cut inside the second row's block.
  for (auto [id, name, bytes] : {std::tuple{16u, "iq2_xxs", 66u}, {17u, "iq2_xs", 74u}, {22u, "iq2_s", 82u},
                                 {18u, "iq3_xxs", 98u}, {21u, "iq3_s", 110u}, {19u, "iq1_s", 50u}, {29u, "iq1_m", 56u}}) {
    c.push_back({std::string("row_not_block_multiple_") + name, one({128}, id, 0, 256),
                 std::string("not a multiple of the ") + name + " block size"});
    c.push_back({std::string("truncated_") + name, one({256, 2}, id, 0, (2 * bytes - 1) / 32 * 32), "extends past the end"});
  }
  c.push_back({"misaligned_offset", one({4}, 0, 4, 64), "not aligned"});
  c.push_back({"offset_past_end", one({4}, 0, 1024, 32), "extends past the end"});
  c.push_back({"size_past_end", one({64}, 0, 0, 32), "extends past the end"});
  c.push_back({"offset_overflow", one({4}, 0, ~uint64_t{0} - 31, 32), "extends past the end"});
  c.push_back({"duplicate_tensor", build(3, {{"t", {4}, 0, 0}, {"t", {4}, 0, 32}}, 64), "duplicate tensor name 't'"});
  c.push_back({"alignment_zero", build(3, {}, 0, [](Bytes& b) { b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(0); }, 1),
               "not a power of two"});
  c.push_back({"alignment_three", build(3, {}, 0, [](Bytes& b) { b.str("general.alignment").put<uint32_t>(4).put<uint32_t>(3); }, 1),
               "not a power of two"});
  c.push_back({"alignment_wrong_type", build(3, {}, 0, [](Bytes& b) { b.str("general.alignment").put<uint32_t>(8).str("32"); }, 1),
               "general.alignment must be u32"});
  {
    auto v = valid_small_gguf();
    v.resize(v.size() - 1);
    c.push_back({"truncated_data", v, "extends past the end"});
  }
  return c;
}

}  // namespace volga::testing
