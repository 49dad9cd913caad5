// Safetensors reader: valid files decode exactly; malformed headers, byte
// ranges and shapes are rejected with an error naming the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "tensor/half.h"
#include "util/error.h"

namespace volga {
namespace {

std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> floats(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string error_of(const std::vector<uint8_t>& file) {
  try {
    SafetensorsModel::parse(file.data(), file.size(), "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, DecodesF32F16Bf16) {
  std::vector<uint8_t> data = floats({1.5f, -2.0f});
  const uint16_t h[2] = {fp32_to_fp16(0.25f), fp32_to_fp16(-3.0f)};
  const uint16_t b[2] = {fp32_to_bf16(8.0f), fp32_to_bf16(-0.5f)};
  data.insert(data.end(), reinterpret_cast<const uint8_t*>(h), reinterpret_cast<const uint8_t*>(h) + 4);
  data.insert(data.end(), reinterpret_cast<const uint8_t*>(b), reinterpret_cast<const uint8_t*>(b) + 4);
  auto file = make_file(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("h":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})",
      data);
  auto m = SafetensorsModel::parse(file.data(), file.size(), "t");
  ASSERT_EQ(m->tensors().size(), 3u);
  EXPECT_EQ(m->find("a")->to_f32(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(m->find("h")->to_f32(), (std::vector<float>{0.25f, -3.0f}));
  EXPECT_EQ(m->find("h")->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(m->find("b")->to_f32(), (std::vector<float>{8.0f, -0.5f}));
  EXPECT_EQ(m->find("missing"), nullptr);
}

TEST(Safetensors, RejectsMalformedFiles) {
  const auto data = floats({1, 2, 3, 4});
  EXPECT_NE(error_of({1, 2, 3}).find("shorter than 8 bytes"), std::string::npos);
  auto huge = make_file("{}", data);
  huge[5] = 1;  // header length 2^40
  EXPECT_NE(error_of(huge).find("header length"), std::string::npos);
  EXPECT_NE(error_of(make_file("[1,2]", data)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(make_file("{\"a\":", data)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[4]}})", data)).find("'a'"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", data))
                .find("outside the file"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", data))
                .find("outside the file"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data))
                .find("needs 12 bytes"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data))
                .find("invalid shape"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":"F32","shape":[65536,65536,65536,65536],"data_offsets":[0,16]}})", data))
                .find("invalid shape"), std::string::npos);
  EXPECT_NE(error_of(make_file(R"({"a":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})", data)).find("malformed"),
            std::string::npos);
}

TEST(Safetensors, UnsupportedDtypeFailsOnUse) {
  const auto data = floats({1, 2});
  auto file = make_file(R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", data);
  auto m = SafetensorsModel::parse(file.data(), file.size(), "t");
  try {
    m->find("i")->to_f32();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("I64"), std::string::npos);
  }
}

}  // namespace
}  // namespace volga
