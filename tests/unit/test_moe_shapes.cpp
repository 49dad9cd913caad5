// MoE tensors as converters write them: the shared-expert gate
// ffn_gate_inp_shexp of a qwen35moe (Qwen3.5-MoE / qwen3next style) layer is
// written as a vector {E} by some converters and as a one-row matrix {E, 1}
// by others (the Hugging Face Linear(E, 1) weight). Both must load and give
// the same logits bit for bit; a transposed {1, E} is refused naming the
// tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "format/gguf.h"
#include "model/model.h"
#include "synth_model.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace volga {
namespace {

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "volga_moe_shapes_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
}

// The tiny synthetic qwen35moe file, its shared-expert gates given `shape`
// (null: as written, {E}).
std::vector<uint8_t> qwen35moe_bytes(const std::vector<int64_t>* shape) {
  const std::string path = temp_path("base");
  synth::SynthOptions o;
  o.arch = "qwen35moe";
  o.type = "q8_0";
  o.output = path;
  o.quiet = true;
  synth::write_synthetic_model(o);
  auto f = GgufFile::open(path);
  GgufWriter w;
  for (const auto& [k, v] : f->metadata()) w.set(k, v);
  int gates = 0;
  for (const auto& t : f->tensors()) {
    std::vector<int64_t> dims(t.ne, t.ne + t.n_dims);
    if (shape && t.name.find("ffn_gate_inp_shexp") != std::string::npos) {
      EXPECT_EQ(dims.size(), 1u) << t.name;  // the synthetic writer's own shape is {E}
      dims = *shape;
      ++gates;
    }
    w.add_tensor(t.name, t.type, dims, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  if (shape) EXPECT_GT(gates, 0);
  std::remove(path.c_str());
  return w.to_bytes();
}

std::vector<float> logits(const std::vector<uint8_t>& bytes) {
  ThreadPool pool(1);
  auto g = GgufFile::parse(bytes.data(), bytes.size(), "m.gguf");
  auto m = load_model(*g, pool);
  KvCache cache(m->spec(), 1, 16);
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(7 + 3 * i, i, 0, true);
  return m->forward(b, cache).data;
}

TEST(MoeShapes, SharedExpertGateAsVectorOrOneRowMatrix) {
  const std::vector<uint8_t> vec = qwen35moe_bytes(nullptr);
  auto g = GgufFile::parse(vec.data(), vec.size(), "m.gguf");
  const TensorInfo* t = g->find_tensor("blk.0.ffn_gate_inp_shexp.weight");
  ASSERT_NE(t, nullptr);
  const int64_t E = t->ne[0];
  const std::vector<int64_t> one_row{E, 1};
  const std::vector<float> a = logits(vec);
  const std::vector<float> b = logits(qwen35moe_bytes(&one_row));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
}

TEST(MoeShapes, TransposedSharedExpertGateIsRefused) {
  const std::vector<uint8_t> vec = qwen35moe_bytes(nullptr);
  auto g = GgufFile::parse(vec.data(), vec.size(), "m.gguf");
  const int64_t E = g->find_tensor("blk.0.ffn_gate_inp_shexp.weight")->ne[0];
  const std::vector<int64_t> column{1, E};
  try {
    logits(qwen35moe_bytes(&column));
    FAIL() << "a {1, E} shared-expert gate loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ffn_gate_inp_shexp"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace volga
