// Attention at depth through whole models: a long prompt (three 256-position
// attention chunks) prefilled in one pass, then the same prompt prefilled in
// part and its last tokens decoded one at a time, on 1, 2 and 3 threads —
// every logit bit for bit the same. Prefill tiles walk their chunks in one
// kernel call; a decoded token's chunks are spread over the threads and
// merged in chunk order (kernels/attend_tiled.h, model/blocks.cpp), so this
// checks that neither the thread count nor the path changes a result, for
// dense GQA (qwen3), the gated attention of the Qwen3.5 hybrid (qwen35) and
// MLA's latent cache (deepseek2). Agreement with the float64 reference at
// this depth: tests/unit/test_attention.cpp (kernel) and tests/e2e.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include "format/gguf.h"
#include "model/model.h"
#include "synth_model.h"

namespace volga {
namespace {

constexpr int kPrompt = 600, kDecoded = 6;

class AttentionDepthTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "volga_depth_" + GetParam() + "_" + std::to_string(::getpid()) + ".gguf";
    synth::SynthOptions o;
    o.arch = GetParam();
    o.type = "q8_0";
    o.output = path_;
    o.quiet = true;
    o.n_ctx = 1024;
    synth::write_synthetic_model(o);
    file_ = GgufFile::open(path_);
    std::mt19937 rng(7);
    for (int i = 0; i < kPrompt; ++i) ids_.push_back(static_cast<int32_t>(rng() % 500));
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Logits of the last kDecoded tokens: prefill of the first `prefill`
  // tokens in one pass, then one token per pass, on `threads` threads.
  std::vector<float> last_logits(int threads, int prefill) {
    ThreadPool pool(threads);
    std::unique_ptr<Model> model = load_model(*file_, pool);
    KvCache cache(model->spec(), 1, kPrompt);
    std::vector<float> out;
    auto pass = [&](int from, int to) {
      Batch b;
      for (int i = from; i < to; ++i) b.add(ids_[static_cast<size_t>(i)], i, 0, i >= kPrompt - kDecoded);
      Logits l = model->forward(b, cache);
      out.insert(out.end(), l.data.begin(), l.data.end());
    };
    pass(0, prefill);
    for (int i = prefill; i < kPrompt; ++i) pass(i, i + 1);
    return out;
  }

  std::string path_;
  std::unique_ptr<GgufFile> file_;
  std::vector<int32_t> ids_;
};

TEST_P(AttentionDepthTest, DecodeEqualsPrefillOnAnyThreadCount) {
  const std::vector<float> want = last_logits(1, kPrompt);  // one prefill pass, one thread
  ASSERT_FALSE(want.empty());
  for (int threads : {1, 2, 3}) {
    EXPECT_EQ(last_logits(threads, kPrompt), want) << "prefill, " << threads << " threads";
    EXPECT_EQ(last_logits(threads, kPrompt - kDecoded), want) << "decode, " << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, AttentionDepthTest, ::testing::Values("qwen3", "qwen35", "deepseek2"));

}  // namespace
}  // namespace volga
