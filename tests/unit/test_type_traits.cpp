// The type rows (tensor/type_traits.h) against facts written here from the
// GGUF/ggml format definition (block sizes as the sum of each block's fields),
// and the visitor's round trip for every type with a row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "tensor/type_traits.h"

namespace volga {
namespace {

// One type as the format defines it.
struct FormatFacts {
  uint32_t ggml_id;
  const char* name;
  int64_t elements;  // per block
  int64_t bytes;     // per block
  bool has_min;      // value = d * q + m
  int32_t offset;    // value = d * (q - offset)
  int scale_group;   // elements per scale in the integer products; 0: none
};

// fp16 fields are 2 bytes; 4-bit quants take elements / 2 bytes, their fifth
// bits elements / 8, q6_k's high pairs elements / 4.
const std::vector<FormatFacts>& format_facts() {
  static const std::vector<FormatFacts> facts = {
      {0, "f32", 1, 4, false, 0, 0},
      {1, "f16", 1, 2, false, 0, 0},
      {2, "q4_0", 32, 2 + 32 / 2, false, 8, 32},                      // d, qs
      {3, "q4_1", 32, 2 + 2 + 32 / 2, true, 0, 32},                   // d, m, qs
      {6, "q5_0", 32, 2 + 32 / 8 + 32 / 2, false, 16, 32},            // d, qh, qs
      {7, "q5_1", 32, 2 + 2 + 32 / 8 + 32 / 2, true, 0, 32},          // d, m, qh, qs
      {8, "q8_0", 32, 2 + 32, false, 0, 32},                          // d, qs
      {10, "q2_k", 256, 256 / 16 + 256 / 4 + 2 + 2, true, 0, 16},   // scales, qs, d, dmin
      {11, "q3_k", 256, 256 / 8 + 256 / 4 + 12 + 2, false, 4, 16},  // hmask, qs, scales, d
      {12, "q4_k", 256, 2 + 2 + 12 + 256 / 2, true, 0, 32},           // d, dmin, scales, qs
      {13, "q5_k", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2, true, 0, 32}, // d, dmin, scales, qh, qs
      {14, "q6_k", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2, false, 32, 16},  // ql, qh, scales, d
      {20, "iq4_nl", 32, 2 + 32 / 2, false, 0, 32},                   // d, qs
      {23, "iq4_xs", 256, 2 + 2 + 256 / 64 + 256 / 2, false, 0, 32},  // d, scales_h, scales_l, qs
      {16, "iq2_xxs", 256, 2 + 256 / 8 * 2, false, 0, 32},            // d, qs (uint16)
      {17, "iq2_xs", 256, 2 + 256 / 8 * 2 + 256 / 32, false, 0, 16},  // d, qs (uint16), scales
      {22, "iq2_s", 256, 2 + 256 / 4 + 256 / 32 + 256 / 32, false, 0, 16},  // d, qs + signs, qh, scales
      {18, "iq3_xxs", 256, 2 + 3 * 256 / 8, false, 0, 32},            // d, qs + scales_and_signs
      {21, "iq3_s", 256, 2 + 256 / 4 + 256 / 32 + 256 / 8 + 256 / 64, false, 0, 32},  // d, qs, qh, signs, scales
      {19, "iq1_s", 256, 2 + 256 / 8 + 256 / 32 * 2, false, 0, 32},   // d, qs, qh (uint16)
      {29, "iq1_m", 256, 256 / 8 + 256 / 16 + 256 / 32, false, 0, 16},  // qs, qh, scales (d inside)
      {30, "bf16", 1, 2, false, 0, 0},
  };
  return facts;
}

const FormatFacts* format_facts_of(DType t) {
  for (const auto& f : format_facts())
    if (f.ggml_id == static_cast<uint32_t>(t)) return &f;
  return nullptr;
}

TEST(TypeTraits, EveryFormatTypeHasItsRowWithTheFormatsFacts) {
  for (const auto& f : format_facts()) {
    SCOPED_TRACE(f.name);
    const auto row = dtype_traits(f.ggml_id);
    ASSERT_TRUE(row.has_value());
    EXPECT_EQ(static_cast<uint32_t>(row->type), f.ggml_id);
    EXPECT_STREQ(row->name, f.name);
    EXPECT_EQ(row->block_size, f.elements);
    EXPECT_EQ(row->block_bytes, f.bytes);
    EXPECT_EQ(row->super_block, f.elements == 256);
    EXPECT_EQ(row->has_min, f.has_min);
    EXPECT_EQ(row->offset, f.offset);
    EXPECT_EQ(row->int8_scale_group, f.scale_group);
    EXPECT_EQ(row_bytes(row->type, 4 * f.elements), 4 * f.bytes);
  }
}

TEST(TypeTraits, EveryRowIsCheckedAgainstTheFormat) {
  EXPECT_EQ(kSupportedTypes.size(), format_facts().size());
  for (DType t : kSupportedTypes) EXPECT_NE(format_facts_of(t), nullptr) << dtype_name(t);
}

TEST(TypeTraits, RowsAreConsistent) {
  for (DType t : kSupportedTypes) {
    const DTypeTraits& f = traits(t);
    SCOPED_TRACE(f.name);
    EXPECT_EQ(f.type, t);
    EXPECT_EQ(f.nonlinear, f.values != nullptr);  // the compile-time flag matches the table
    EXPECT_EQ(ggml_type_name(static_cast<uint32_t>(t)), f.name);  // ggml's own name for the id
    EXPECT_GT(f.block_size, 0);
    EXPECT_GT(f.block_bytes, 0);
    // A minimum and an offset are two ways of centring: a type has at most one;
    // signed integers need neither.
    EXPECT_FALSE(f.has_min && f.offset != 0);
    EXPECT_FALSE(f.signed_quants && (f.has_min || f.offset != 0));
    EXPECT_FALSE(f.values != nullptr && (f.has_min || f.offset != 0 || f.signed_quants));
    if (f.int8_scale_group > 0) {
      // Integer products walk activation chunks of 32 elements.
      EXPECT_EQ(f.block_size % 32, 0);
      EXPECT_EQ(32 % f.int8_scale_group, 0);
      EXPECT_TRUE(kernels::int8_matmul_supported(t));
    } else {
      EXPECT_FALSE(kernels::int8_matmul_supported(t));
    }
    std::string upper = f.name;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    EXPECT_EQ(parse_dtype(f.name), t);
    EXPECT_EQ(parse_dtype(upper), t);
    EXPECT_NE(supported_dtype_names().find(f.name), std::string::npos);
  }
}

TEST(TypeTraits, SupportedTypesAscendWithoutRepeats) {
  for (size_t i = 1; i < kSupportedTypes.size(); ++i)
    EXPECT_LT(static_cast<uint32_t>(kSupportedTypes[i - 1]), static_cast<uint32_t>(kSupportedTypes[i]));
}

TEST(TypeTraits, VisitorRoundTripsEveryRow) {
  for (DType t : kSupportedTypes) {
    SCOPED_TRACE(dtype_name(t));
    int calls = 0;
    DType seen{};
    size_t block_struct_bytes = 0;
    const bool visited = visit_dtype(t, [&]<DType T>() {
      ++calls;
      seen = T;
      block_struct_bytes = sizeof(BlockOf<T>);
    });
    EXPECT_TRUE(visited);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, t);
    EXPECT_EQ(static_cast<int64_t>(block_struct_bytes), format_facts_of(t)->bytes);
  }
}

TEST(TypeTraits, VisitorFiltersAndRefusesUnknownIds) {
  for (DType t : kSupportedTypes) {
    int calls = 0;
    const bool visited = visit_dtype<int8_type>(t, [&]<DType T>() {
      static_assert(kFacts<T>.int8_scale_group > 0, "the filter keeps other types uninstantiated");
      ++calls;
    });
    EXPECT_EQ(visited, format_facts_of(t)->scale_group > 0) << dtype_name(t);
    EXPECT_EQ(calls, visited ? 1 : 0) << dtype_name(t);
  }
  // ids ggml has but Volga does not implement: q8_1, q8_k, i8, and one past ggml's range.
  for (uint32_t id : {9u, 15u, 24u, 63u}) {
    int calls = 0;
    EXPECT_FALSE(visit_dtype(static_cast<DType>(id), [&]<DType>() { ++calls; })) << id;
    EXPECT_EQ(calls, 0);
    EXPECT_FALSE(dtype_traits(id).has_value()) << id;
  }
}

// llama.cpp quantizes a matrix whose rows a k-quant's super-blocks do not
// divide as q5_0 (for q4_k), q5_1 (q5_k) or q8_0 (q6_k), and as f16 when
// 32-element blocks do not divide them either.
TEST(TypeTraits, TypeForRowsFollowsLlamaCppFallbacks) {
  EXPECT_EQ(type_for_rows(DType::Q4_K, 4096), DType::Q4_K);
  EXPECT_EQ(type_for_rows(DType::Q4_K, 96), DType::Q5_0);
  EXPECT_EQ(type_for_rows(DType::Q5_K, 96), DType::Q5_1);
  EXPECT_EQ(type_for_rows(DType::Q6_K, 96), DType::Q8_0);
  EXPECT_EQ(type_for_rows(DType::Q4_K, 100), DType::F16);
  // llama.cpp (September 2026, tensor_type_fallback): q2_k and q3_k fall back to
  // q4_0, the i-quants and iq4_xs to iq4_nl; e2e.llama_quantize checks it against the tool.
  EXPECT_EQ(type_for_rows(DType::Q2_K, 96), DType::Q4_0);
  EXPECT_EQ(type_for_rows(DType::Q3_K, 96), DType::Q4_0);
  EXPECT_EQ(type_for_rows(DType::Q3_K, 100), DType::F16);
  EXPECT_EQ(type_for_rows(DType::Q8_0, 100), DType::F16);
  EXPECT_EQ(type_for_rows(DType::Q4_0, 64), DType::Q4_0);
  EXPECT_EQ(type_for_rows(DType::F32, 7), DType::F32);
  EXPECT_EQ(type_for_rows(DType::BF16, 7), DType::BF16);
}

}  // namespace
}  // namespace volga
