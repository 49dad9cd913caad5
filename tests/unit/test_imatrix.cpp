// Importance matrix files: llama.cpp's GGUF layout round trip, the legacy .dat
// layout built byte by byte from its definition, and hostile files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "runtime/imatrix.h"
#include "util/error.h"

namespace volga {
namespace {

std::string temp_path(const char* name) { return ::testing::TempDir() + name; }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void put_i32(std::string& s, int32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_f32(std::string& s, float v) { s.append(reinterpret_cast<const char*>(&v), 4); }

TEST(Imatrix, GgufRoundTripKeepsSumsCountsAndMetadata) {
  Imatrix m;
  m.datasets = {"calibration.txt"};
  m.chunk_count = 7;
  m.chunk_size = 512;
  ImatrixEntry& dense = m.entries["blk.0.attn_q.weight"];
  dense.cols = 4;
  dense.sums = {1, 2, 3, 4.5};
  dense.counts = {10};
  ImatrixEntry& experts = m.entries["blk.1.ffn_down_exps.weight"];
  experts.cols = 2;
  experts.sums = {1, 1, 8, 6, 0, 0};
  experts.counts = {4, 2, 0};
  const std::string path = temp_path("imatrix-roundtrip.gguf");
  write_imatrix_gguf(m, path);
  const Imatrix r = read_imatrix(path);
  EXPECT_EQ(r.datasets, m.datasets);
  EXPECT_EQ(r.chunk_count, 7);
  EXPECT_EQ(r.chunk_size, 512);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries.at("blk.0.attn_q.weight").sums, dense.sums);
  EXPECT_EQ(r.entries.at("blk.1.ffn_down_exps.weight").counts, experts.counts);
  // Weights are per-column means; an expert no token reached gets 1s.
  EXPECT_EQ(r.weights("blk.0.attn_q.weight", 0, 4), (std::vector<float>{0.1f, 0.2f, 0.3f, 0.45f}));
  EXPECT_EQ(r.weights("blk.1.ffn_down_exps.weight", 1, 2), (std::vector<float>{4.0f, 3.0f}));
  EXPECT_EQ(r.weights("blk.1.ffn_down_exps.weight", 2, 2), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_TRUE(r.weights("blk.9.attn_q.weight", 0, 4).empty());
  EXPECT_THROW(r.weights("blk.0.attn_q.weight", 0, 8), Error);  // made for another model
}

TEST(Imatrix, ReadsTheLegacyDatLayout) {
  // int32 entries; per entry int32 name length, name, int32 calls, int32 n,
  // n floats; then int32 chunk count, int32 dataset length, dataset.
  std::string b;
  put_i32(b, 2);
  const std::string a = "blk.0.ffn_up.weight", c = "output.weight";
  put_i32(b, static_cast<int32_t>(a.size()));
  b += a;
  put_i32(b, 4);
  put_i32(b, 3);
  put_f32(b, 4.0f);
  put_f32(b, 8.0f);
  put_f32(b, 2.0f);
  put_i32(b, static_cast<int32_t>(c.size()));
  b += c;
  put_i32(b, 2);
  put_i32(b, 1);
  put_f32(b, 5.0f);
  put_i32(b, 12);
  put_i32(b, 8);
  b += "wiki.txt";
  const std::string path = temp_path("imatrix-legacy.dat");
  write_bytes(path, b);
  const Imatrix m = read_imatrix(path);
  EXPECT_EQ(m.chunk_count, 12);
  EXPECT_EQ(m.datasets, std::vector<std::string>{"wiki.txt"});
  EXPECT_EQ(m.weights(a, 0, 3), (std::vector<float>{1.0f, 2.0f, 0.5f}));
  EXPECT_EQ(m.weights(c, 0, 1), (std::vector<float>{2.5f}));
  // Our writer's .dat reads back to the same means.
  const std::string again = temp_path("imatrix-legacy-again.dat");
  write_imatrix_dat(m, again);
  const Imatrix r = read_imatrix(again);
  EXPECT_EQ(r.weights(a, 0, 3), m.weights(a, 0, 3));
  EXPECT_EQ(r.chunk_count, 12);
  // The trailing chunk count and dataset are optional.
  write_bytes(path, b.substr(0, b.size() - 16));
  EXPECT_EQ(read_imatrix(path).entries.size(), 2u);
}

TEST(Imatrix, HostileFilesAreRefused) {
  std::string b;
  put_i32(b, 1);
  put_i32(b, 5);
  b += "x.wei";
  put_i32(b, 1);
  put_i32(b, 4);
  put_f32(b, 1.0f);
  const std::string path = temp_path("imatrix-bad.dat");
  write_bytes(path, b);  // 4 values announced, 1 present
  EXPECT_THROW(read_imatrix(path), Error);
  std::string huge;
  put_i32(huge, 1);
  put_i32(huge, 1 << 30);  // name longer than the file
  write_bytes(path, huge);
  EXPECT_THROW(read_imatrix(path), Error);
  std::string nan = b.substr(0, b.size() - 4);
  nan.replace(nan.size() - 4, 4, std::string("\x01\x00\x00\x00", 4));  // 1 value
  put_f32(nan, std::numeric_limits<float>::quiet_NaN());
  write_bytes(path, nan);
  EXPECT_THROW(read_imatrix(path), Error);
  write_bytes(path, "");
  EXPECT_THROW(read_imatrix(path), Error);
  EXPECT_THROW(read_imatrix(temp_path("no-such-imatrix.dat")), Error);
  // A GGUF that is not an importance matrix.
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  const std::string model = temp_path("not-imatrix.gguf");
  w.write(model);
  EXPECT_THROW(read_imatrix(model), Error);
}

}  // namespace
}  // namespace volga
