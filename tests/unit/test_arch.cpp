// The architecture table: one row per architecture, found by name, with the
// facts of each published model family (written here from the model
// definitions, not read from the table).
#include <gtest/gtest.h>

#include <set>

#include "model/arch.h"
#include "model/model.h"

namespace volga {
namespace {

TEST(ArchTable, RowsAreFoundByNameAndAreUnique) {
  std::set<std::string> names;
  std::set<int> ids;
  for (const ArchTraits& t : architecture_table()) {
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    EXPECT_TRUE(ids.insert(static_cast<int>(t.arch)).second) << t.name;
    ASSERT_NE(find_architecture(t.name), nullptr) << t.name;
    EXPECT_EQ(find_architecture(t.name)->arch, t.arch);
    EXPECT_STREQ(arch_traits(t.arch).name, t.name);
    EXPECT_NE(t.make, nullptr) << t.name;
  }
  EXPECT_EQ(supported_architectures().size(), architecture_table().size());
  EXPECT_EQ(find_architecture("qwen3.5"), nullptr);
  EXPECT_EQ(find_architecture("Qwen2"), nullptr);  // GGUF names are lower-case, compared exactly
  EXPECT_EQ(find_architecture(""), nullptr);
}

TEST(ArchTable, FactsOfEachFamily) {
  // Llama: adjacent-pair RoPE, no biases, no q/k norm, dense.
  const ArchTraits* llama = find_architecture("llama");
  ASSERT_NE(llama, nullptr);
  EXPECT_EQ(llama->rope, RopeStyle::Normal);
  EXPECT_FALSE(llama->qkv_bias || llama->qk_norm || llama->moe || llama->mla);
  // Qwen2: NeoX RoPE, q/k/v biases.
  const ArchTraits* qwen2 = find_architecture("qwen2");
  ASSERT_NE(qwen2, nullptr);
  EXPECT_EQ(qwen2->rope, RopeStyle::Neox);
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_FALSE(qwen2->qk_norm);
  // Qwen3 and Qwen3-MoE: per-head q/k RMSNorm, no biases; the MoE renormalises its top-k.
  for (const char* n : {"qwen3", "qwen3moe"}) {
    const ArchTraits* q = find_architecture(n);
    ASSERT_NE(q, nullptr) << n;
    EXPECT_EQ(q->rope, RopeStyle::Neox) << n;
    EXPECT_TRUE(q->qk_norm) << n;
    EXPECT_FALSE(q->qkv_bias) << n;
  }
  EXPECT_TRUE(find_architecture("qwen3moe")->moe);
  EXPECT_TRUE(find_architecture("qwen3moe")->renorm_topk);
  EXPECT_FALSE(find_architecture("qwen3")->moe);
  // DeepSeek-V2/V3 (and GigaChat 3): latent attention, adjacent-pair RoPE, experts, own keys.
  const ArchTraits* ds = find_architecture("deepseek2");
  ASSERT_NE(ds, nullptr);
  EXPECT_TRUE(ds->mla && ds->moe);
  EXPECT_EQ(ds->rope, RopeStyle::Normal);
  EXPECT_NE(ds->read_hparams, nullptr);
  // Qwen3.5 hybrids: NeoX (text-only sectioned) RoPE, q/k norms in the attention
  // layers, own keys (DeltaNet sizes); the MoE renormalises its top-k.
  for (const char* n : {"qwen35", "qwen35moe"}) {
    const ArchTraits* q = find_architecture(n);
    ASSERT_NE(q, nullptr) << n;
    EXPECT_EQ(q->rope, RopeStyle::Neox) << n;
    EXPECT_TRUE(q->qk_norm) << n;
    EXPECT_FALSE(q->qkv_bias || q->mla) << n;
    EXPECT_NE(q->read_hparams, nullptr) << n;
  }
  EXPECT_FALSE(find_architecture("qwen35")->moe);
  EXPECT_TRUE(find_architecture("qwen35moe")->moe && find_architecture("qwen35moe")->renorm_topk);
}

}  // namespace
}  // namespace volga
