#include <gtest/gtest.h>

#include <cmath>

#include "format/gguf.h"
#include "gguf_corpus.h"
#include "util/error.h"

namespace volga {
namespace {

using testing::Bytes;

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    GgufFile::parse(bytes.data(), bytes.size(), "case");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gguf, ReadsEveryValueTypeFromHandBuiltFile) {
  Bytes b;
  b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(15);
  b.str("u8").put<uint32_t>(0).put<uint8_t>(200);
  b.str("i8").put<uint32_t>(1).put<int8_t>(-100);
  b.str("u16").put<uint32_t>(2).put<uint16_t>(60000);
  b.str("i16").put<uint32_t>(3).put<int16_t>(-30000);
  b.str("u32").put<uint32_t>(4).put<uint32_t>(4000000000u);
  b.str("i32").put<uint32_t>(5).put<int32_t>(-2000000000);
  b.str("f32").put<uint32_t>(6).put<float>(1.5f);
  b.str("bool").put<uint32_t>(7).put<uint8_t>(1);
  b.str("str").put<uint32_t>(8).str("Привет, 世界");
  b.str("u64").put<uint32_t>(10).put<uint64_t>(uint64_t{1} << 40);
  b.str("i64").put<uint32_t>(11).put<int64_t>(-(int64_t{1} << 40));
  b.str("f64").put<uint32_t>(12).put<double>(-2.25);
  b.str("arr").put<uint32_t>(9).put<uint32_t>(5).put<uint64_t>(3).put<int32_t>(1).put<int32_t>(-2).put<int32_t>(3);
  b.str("strs").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("a").str("");
  b.str("nested").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1).put<uint32_t>(6).put<uint64_t>(2)
      .put<float>(0.5f).put<float>(2.0f);
  auto f = GgufFile::parse(b.data.data(), b.data.size());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_int("u8"), 200);
  EXPECT_EQ(f->get_int("i8"), -100);
  EXPECT_EQ(f->get_int("u16"), 60000);
  EXPECT_EQ(f->get_int("i16"), -30000);
  EXPECT_EQ(f->get_int("u32"), 4000000000LL);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(f->get_int("u64"), int64_t{1} << 40);
  EXPECT_EQ(f->get_int("i64"), -(int64_t{1} << 40));
  EXPECT_FLOAT_EQ(f->get_float("f32"), 1.5);
  EXPECT_DOUBLE_EQ(f->get_float("f64"), -2.25);
  EXPECT_EQ(f->get_bool_opt("bool"), true);
  EXPECT_EQ(f->get_string("str"), "Привет, 世界");
  const auto& arr = f->get_array("arr", GgufType::INT32);
  ASSERT_EQ(arr.size(), 3u);
  EXPECT_EQ(arr[1].i, -2);
  const auto& strs = f->get_array("strs", GgufType::STRING);
  ASSERT_EQ(strs.size(), 2u);
  EXPECT_EQ(strs[0].s, "a");
  EXPECT_EQ(strs[1].s, "");
  const auto& nested = f->get_array("nested", GgufType::ARRAY);
  ASSERT_EQ(nested.size(), 1u);
  EXPECT_EQ(nested[0].array_type, GgufType::FLOAT32);
  EXPECT_FLOAT_EQ(static_cast<float>(nested[0].array[1].f), 2.0f);
  // Typed access errors name the key and the types.
  EXPECT_THROW(f->get_string("u8"), Error);
  EXPECT_THROW(f->get_int("missing"), Error);
  EXPECT_THROW(f->get_array("arr", GgufType::FLOAT32), Error);
  EXPECT_EQ(f->get_int_opt("missing"), std::nullopt);
}

TEST(Gguf, WriterRoundTripsMetadataAndTensorsZeroCopy) {
  GgufWriter w(64);
  w.set_u32("a.u32", 7);
  w.set_f32("a.f32", 0.25f);
  w.set_bool("a.bool", false);
  w.set_string("a.str", "Bonjour");
  w.set_string_array("a.strs", {"x", "yy"});
  w.set_i32_array("a.ints", {-1, 2});
  w.set_f32_array("a.floats", {1.0f, -1.0f});
  w.set(std::string("a.i64"), [] { GgufValue v; v.type = GgufType::INT64; v.i = -5; return v; }());
  std::vector<float> t1 = {1, 2, 3, 4, 5, 6};
  std::vector<uint8_t> b1(reinterpret_cast<uint8_t*>(t1.data()), reinterpret_cast<uint8_t*>(t1.data() + 6));
  w.add_tensor("t1", DType::F32, {3, 2}, b1);
  w.add_tensor("t2", DType::Q8_0, {32}, std::vector<uint8_t>(34, 1));
  auto bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->get_int("a.u32"), 7);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float("a.f32")), 0.25f);
  EXPECT_EQ(f->get_bool_opt("a.bool"), false);
  EXPECT_EQ(f->get_string("a.str"), "Bonjour");
  EXPECT_EQ(f->get_array("a.strs", GgufType::STRING)[1].s, "yy");
  EXPECT_EQ(f->get_array("a.ints", GgufType::INT32)[0].i, -1);
  EXPECT_EQ(f->get_int("a.i64"), -5);
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo* t = f->find_tensor("t1");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 3);
  EXPECT_EQ(t->ne[1], 2);
  EXPECT_EQ(t->n_bytes, 24u);
  // Zero-copy: the data pointer points into the parsed buffer, aligned.
  EXPECT_GE(t->data, bytes.data());
  EXPECT_LT(t->data, bytes.data() + bytes.size());
  EXPECT_EQ((t->data - bytes.data()) % 64, 0);
  EXPECT_EQ(reinterpret_cast<const float*>(t->data)[5], 6.0f);
  const TensorInfo* t2 = f->find_tensor("t2");
  ASSERT_NE(t2, nullptr);
  EXPECT_EQ(t2->type, DType::Q8_0);
  EXPECT_EQ(t2->n_bytes, 34u);
}

TEST(Gguf, WriterRejectsInconsistentTensors) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(w.add_tensor("x", DType::Q4_K, {100}, std::vector<uint8_t>(144)), Error);
  w.add_tensor("x", DType::F32, {1}, std::vector<uint8_t>(4));
  EXPECT_THROW(w.add_tensor("x", DType::F32, {1}, std::vector<uint8_t>(4)), Error);
  EXPECT_THROW(GgufWriter(3), Error);
}

TEST(Gguf, ValidSmallFileParses) {
  auto v = testing::valid_small_gguf();
  auto f = GgufFile::parse(v.data(), v.size());
  EXPECT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->get_string("general.architecture"), "test");
}

TEST(Gguf, EveryTruncationIsRejectedWithAClearError) {
  auto v = testing::valid_small_gguf();
  for (size_t len = 0; len < v.size(); ++len) {
    std::vector<uint8_t> cut(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(len));
    std::string msg = parse_error(cut);
    EXPECT_FALSE(msg.empty()) << "prefix of " << len << " bytes was accepted";
    EXPECT_NE(msg.find("GGUF 'case'"), std::string::npos) << msg;
  }
}

TEST(Gguf, MalformedCorpusIsRejectedWithNamedProblem) {
  for (const auto& c : testing::malformed_corpus()) {
    std::string msg = parse_error(c.bytes);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": got '" << msg << "'";
  }
}

TEST(Gguf, SingleByteCorruptionsNeverCrash) {
  // Flip every byte of the header region through a few values: parse either
  // succeeds or throws volga::Error; ASan/UBSan runs catch anything worse.
  auto v = testing::valid_small_gguf();
  for (size_t i = 0; i < v.size() - 80; ++i) {
    for (uint8_t x : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x7F}, uint8_t{0x80}}) {
      auto w = v;
      w[i] = x;
      try {
        auto f = GgufFile::parse(w.data(), w.size());
        for (const auto& t : f->tensors()) {  // accepted: every tensor lies inside the buffer
          EXPECT_GE(t.data, w.data());
          EXPECT_LE(t.data + t.n_bytes, w.data() + w.size()) << "byte " << i;
        }
      } catch (const Error& e) {
        EXPECT_GT(std::string(e.what()).size(), 10u);
      }
    }
  }
}

TEST(Gguf, OpenReportsMissingFile) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace volga
