// Named quantization mixes against the layouts of files llama.cpp's quantizer
// publishes. The expected types are written out here from those files'
// per-tensor listings (e.g. a 32-layer Llama Q4_K_M: attn_v and ffn_down in
// q6_k for layers 0-3, 6, 9, ..., 27 and 28-31), not computed by the code
// under test.
#include <gtest/gtest.h>

#include <set>

#include "tensor/quant_mix.h"
#include "util/error.h"

namespace volga {
namespace {

// A Llama-shaped model: tensors in GGUF file order.
std::vector<MixTensor> llama_tensors(int layers, int64_t embd, int64_t kv, int64_t ff, int64_t vocab, bool tied) {
  std::vector<MixTensor> t;
  t.push_back({"token_embd.weight", {embd, vocab}, DType::F16});
  t.push_back({"output_norm.weight", {embd}, DType::F32});
  if (!tied) t.push_back({"output.weight", {embd, vocab}, DType::F16});
  for (int i = 0; i < layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    t.push_back({b + "attn_norm.weight", {embd}, DType::F32});
    t.push_back({b + "attn_q.weight", {embd, embd}, DType::F16});
    t.push_back({b + "attn_k.weight", {embd, kv}, DType::F16});
    t.push_back({b + "attn_v.weight", {embd, kv}, DType::F16});
    t.push_back({b + "attn_output.weight", {embd, embd}, DType::F16});
    t.push_back({b + "ffn_norm.weight", {embd}, DType::F32});
    t.push_back({b + "ffn_gate.weight", {embd, ff}, DType::F16});
    t.push_back({b + "ffn_up.weight", {embd, ff}, DType::F16});
    t.push_back({b + "ffn_down.weight", {ff, embd}, DType::F16});
  }
  return t;
}

std::map<std::string, std::string> plan(const char* mix, const std::vector<MixTensor>& t, const MixModel& m,
                                        MixOptions o = {}) {
  const QuantMix* q = find_quant_mix(mix);
  EXPECT_NE(q, nullptr) << mix;
  std::map<std::string, std::string> out;
  const std::vector<MixChoice> c = plan_quant_mix(*q, t, m, o);
  for (size_t i = 0; i < t.size(); ++i) out[t[i].name] = c[i].quantize ? dtype_name(c[i].type) : "kept";
  return out;
}

std::string layer_type(const std::map<std::string, std::string>& p, int layer, const char* what) {
  return p.at("blk." + std::to_string(layer) + "." + what + ".weight");
}

// Llama-2-7B: 32 layers, 32 heads, no GQA.
const MixModel kLlama7B{32, 32, 32, 0};
const std::set<int> kMoreBits32 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};

TEST(QuantMix, Q4_K_MOnLlama7B) {
  const auto p = plan("Q4_K_M", llama_tensors(32, 4096, 4096, 11008, 32000, false), kLlama7B);
  EXPECT_EQ(p.at("token_embd.weight"), "q4_k");
  EXPECT_EQ(p.at("output.weight"), "q6_k");
  EXPECT_EQ(p.at("output_norm.weight"), "kept");
  for (int i = 0; i < 32; ++i) {
    const std::string more = kMoreBits32.count(i) ? "q6_k" : "q4_k";
    EXPECT_EQ(layer_type(p, i, "attn_v"), more) << i;
    EXPECT_EQ(layer_type(p, i, "ffn_down"), more) << i;
    for (const char* w : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"}) EXPECT_EQ(layer_type(p, i, w), "q4_k");
    EXPECT_EQ(layer_type(p, i, "attn_norm"), "kept");
  }
}

TEST(QuantMix, Q5_K_MAndQ4_K_SAndQ6_K) {
  const auto t = llama_tensors(32, 4096, 4096, 11008, 32000, false);
  const auto m5 = plan("Q5_K_M", t, kLlama7B);
  const auto s4 = plan("Q4_K_S", t, kLlama7B);
  const auto q6 = plan("Q6_K", t, kLlama7B);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(layer_type(m5, i, "attn_v"), kMoreBits32.count(i) ? "q6_k" : "q5_k");
    EXPECT_EQ(layer_type(m5, i, "attn_q"), "q5_k");
    // Q4_K_S: the first four value projections and the first eighth of down projections get q5_k.
    EXPECT_EQ(layer_type(s4, i, "attn_v"), i < 4 ? "q5_k" : "q4_k");
    EXPECT_EQ(layer_type(s4, i, "ffn_down"), i < 4 ? "q5_k" : "q4_k");
    EXPECT_EQ(layer_type(q6, i, "ffn_down"), "q6_k");
  }
  EXPECT_EQ(m5.at("output.weight"), "q6_k");
  EXPECT_EQ(q6.at("output.weight"), "q6_k");
}

TEST(QuantMix, Q8_0KeepsTheHeadInQ8_0) {
  const auto p = plan("Q8_0", llama_tensors(4, 4096, 4096, 11008, 32000, false), MixModel{4, 32, 32, 0});
  EXPECT_EQ(p.at("output.weight"), "q8_0");
  EXPECT_EQ(p.at("token_embd.weight"), "q8_0");
  EXPECT_EQ(layer_type(p, 2, "attn_v"), "q8_0");
}

TEST(QuantMix, Q3_K_MAndQ2_KOnLlama7B) {
  const auto t = llama_tensors(32, 4096, 4096, 11008, 32000, false);
  const auto m3 = plan("Q3_K_M", t, kLlama7B);
  const auto q2 = plan("Q2_K", t, kLlama7B);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(layer_type(m3, i, "attn_v"), i < 2 ? "q5_k" : "q4_k") << i;
    EXPECT_EQ(layer_type(m3, i, "ffn_down"), i < 2 ? "q5_k" : "q4_k") << i;
    EXPECT_EQ(layer_type(m3, i, "attn_output"), "q4_k");
    EXPECT_EQ(layer_type(m3, i, "attn_q"), "q3_k");
    EXPECT_EQ(layer_type(q2, i, "attn_v"), "q3_k");
    EXPECT_EQ(layer_type(q2, i, "ffn_down"), "q3_k");
    EXPECT_EQ(layer_type(q2, i, "attn_output"), "q3_k");
    EXPECT_EQ(layer_type(q2, i, "ffn_up"), "q2_k");
  }
  EXPECT_EQ(m3.at("output.weight"), "q6_k");
  EXPECT_EQ(q2.at("output.weight"), "q6_k");
}

TEST(QuantMix, GroupedQueryAttentionAndEightExperts) {
  // Llama-3-8B: 8 KV heads of 32 (GQA 4): Q2_K value projections q4_k, IQ4_XS ones q5_k.
  const MixModel l3{32, 32, 8, 0};
  const auto t = llama_tensors(32, 4096, 1024, 14336, 128256, false);
  EXPECT_EQ(layer_type(plan("Q2_K", t, l3), 5, "attn_v"), "q4_k");
  const auto xs = plan("IQ4_XS", t, l3);
  EXPECT_EQ(layer_type(xs, 5, "attn_v"), "q5_k");
  EXPECT_EQ(layer_type(xs, 3, "ffn_down"), "q5_k");  // first eighth, no importance matrix
  EXPECT_EQ(layer_type(xs, 4, "ffn_down"), "iq4_xs");
  EXPECT_EQ(xs.at("output.weight"), "q6_k");
  // Eight experts (Mixtral): value and key projections q8_0 whatever the mix.
  const auto mx = plan("Q4_K_M", t, MixModel{32, 32, 8, 8});
  EXPECT_EQ(layer_type(mx, 10, "attn_v"), "q8_0");
  EXPECT_EQ(layer_type(mx, 10, "attn_k"), "q8_0");
  EXPECT_EQ(layer_type(mx, 10, "attn_q"), "q4_k");
}

TEST(QuantMix, RowsOf896FallBackAndSaySo) {
  // Qwen2-0.5B: 24 layers, 896 columns, 14 heads over 2 KV heads, tied embeddings.
  const auto t = llama_tensors(24, 896, 128, 4864, 151936, true);
  const QuantMix* q = find_quant_mix("q4_k_m");  // names are case-insensitive
  ASSERT_NE(q, nullptr);
  const std::vector<MixChoice> c = plan_quant_mix(*q, t, MixModel{24, 14, 2, 0}, {});
  std::map<std::string, const MixChoice*> by;
  for (size_t i = 0; i < t.size(); ++i) by[t[i].name] = &c[i];
  EXPECT_EQ(by["token_embd.weight"]->type, DType::Q8_0);  // tied: the output's rule, 896 % 256 != 0 -> q8_0
  EXPECT_EQ(by["blk.0.attn_q.weight"]->type, DType::Q5_0);
  EXPECT_NE(by["blk.0.attn_q.weight"]->fallback.find("896"), std::string::npos);
  EXPECT_EQ(by["blk.0.attn_v.weight"]->type, DType::Q8_0);  // q6_k -> q8_0
  EXPECT_EQ(by["blk.4.attn_v.weight"]->type, DType::Q5_0);  // q4_k -> q5_0
  EXPECT_EQ(by["blk.0.ffn_down.weight"]->type, DType::Q6_K);  // 4864 columns hold q6_k blocks
  EXPECT_EQ(by["blk.4.ffn_down.weight"]->type, DType::Q4_K);
  EXPECT_TRUE(by["blk.0.ffn_down.weight"]->fallback.empty());
}

TEST(QuantMix, OverridesPureAndRefusals) {
  const auto t = llama_tensors(8, 4096, 4096, 11008, 32000, false);
  MixOptions o;
  o.output_type = DType::Q8_0;
  o.token_embd_type = DType::Q4_0;
  const auto p = plan("Q4_K_M", t, MixModel{8, 32, 32, 0}, o);
  EXPECT_EQ(p.at("output.weight"), "q8_0");
  EXPECT_EQ(p.at("token_embd.weight"), "q4_0");
  MixOptions pure;
  pure.pure = true;
  const auto pp = plan("Q4_K_M", t, MixModel{8, 32, 32, 0}, pure);
  EXPECT_EQ(pp.at("output.weight"), "q4_k");
  EXPECT_EQ(layer_type(pp, 0, "attn_v"), "q4_k");
  // An explicit type that the rows cannot hold is refused, not replaced.
  MixOptions bad;
  bad.output_type = DType::Q4_K;
  EXPECT_THROW(plan("Q8_0", llama_tensors(2, 896, 128, 4864, 1000, false), MixModel{2, 14, 2, 0}, bad), Error);
  EXPECT_EQ(find_quant_mix("Q9_K_Z"), nullptr);
}

TEST(QuantMix, NamesAreMixesInAnyCaseWithLlamaQuantizesAliases) {
  // llama-quantize upper-cases its type argument and looks it up among its
  // mixes only: "q2_k" is the mix Q2_K (not q2_k everywhere), "iq2_s" the mix
  // IQ2_S (whose base type is iq2_xs), and Q3_K/Q4_K/Q5_K stand for the _M
  // mixes. (e2e.llama_quantize checks the per-tensor types against the tool.)
  const std::vector<std::pair<std::string, std::string>> want = {
      {"q2_k", "Q2_K"},   {"Q2_k", "Q2_K"},     {"q4_k_m", "Q4_K_M"}, {"q3_k", "Q3_K_M"},
      {"Q4_K", "Q4_K_M"}, {"q5_k", "Q5_K_M"},   {"iq2_s", "IQ2_S"},   {"q8_0", "Q8_0"},
      {"f16", "F16"},     {"Iq4_Xs", "IQ4_XS"}, {"q6_k", "Q6_K"}};
  for (const auto& [name, mix] : want) {
    const QuantMix* q = find_quant_mix(name);
    ASSERT_NE(q, nullptr) << name;
    EXPECT_EQ(std::string(q->name), mix) << name;
  }
  EXPECT_EQ(std::string(find_quant_mix("iq2_s")->base_type), "iq2_xs");
  for (const char* bad : {"", "q4", "q4_k_x", "Q4_K_M ", "q3_k_xl", "15"}) EXPECT_EQ(find_quant_mix(bad), nullptr) << bad;
  // Every alias names a mix, and no alias shadows a mix of its own.
  for (const auto& [alias, target] : quant_mix_aliases()) {
    ASSERT_NE(find_quant_mix(target), nullptr) << target;
    for (const QuantMix& m : quant_mixes()) EXPECT_NE(std::string(m.name), std::string(alias));
  }
}

TEST(QuantMix, RoutersNormsAndOneDimensionalTensorsAreKept) {
  std::vector<MixTensor> t = {{"blk.0.ffn_gate_inp.weight", {2048, 64}, DType::F32},
                              {"blk.0.ffn_gate_inp_shexp.weight", {2048, 1}, DType::F32},
                              {"blk.0.attn_kv_a_norm.weight", {512}, DType::F32},
                              {"blk.0.ffn_down_exps.weight", {1408, 2048, 64}, DType::F16},
                              {"blk.0.attn_q.bias", {2048, 1}, DType::F32}};
  const auto p = plan("Q4_K_M", t, MixModel{1, 16, 16, 64});
  EXPECT_EQ(p.at("blk.0.ffn_gate_inp.weight"), "kept");
  EXPECT_EQ(p.at("blk.0.ffn_gate_inp_shexp.weight"), "kept");
  EXPECT_EQ(p.at("blk.0.attn_kv_a_norm.weight"), "kept");
  EXPECT_EQ(p.at("blk.0.attn_q.bias"), "kept");
  // 1408 columns: q6_k (layer 0 gets more bits) falls back to q8_0.
  EXPECT_EQ(p.at("blk.0.ffn_down_exps.weight"), "q8_0");
}

}  // namespace
}  // namespace volga
