// The one place for a tensor type's facts. Each supported DType has one row,
// TypeRow<T>: its DTypeTraits (name, block elements and bytes, super-block or
// not, minimum, offset or levels, the integer products' scale group, the
// fallback for rows its blocks do not divide), its block
// struct (tensor/blocks.h) and its scalar reference (de)quantizers
// (tensor/quant.h). Everything else derives from the rows: the run-time
// table behind traits() and dtype_traits(), the list of supported names, and
// visit_dtype(), which turns a run-time DType into a compile-time one.
//
// Adding a type: its ggml id in DType (dtype.h), its block struct, one row
// here, its reference functions, and its kernels.
//
// Header only, constexpr data: nothing to synchronise.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

namespace volga {

// No definition for a type Volga does not implement.
template <DType T>
struct TypeRow;

// ----------------------------------------------------------------- the rows

// What every row holds besides its facts: the block struct as stored in the
// file and the scalar reference (de)quantizers.
template <typename B, auto Dequantize, auto Quantize>
struct RowBase {
  using Block = B;
  static constexpr auto dequantize = Dequantize;
  static constexpr auto quantize = Quantize;
};

// Float types: a "block" is one element.
template <>
struct TypeRow<DType::F32> : RowBase<float, dequantize_f32_ref, quantize_f32_ref> {
  static constexpr DTypeTraits facts{.type = DType::F32, .name = "f32", .block_size = 1, .block_bytes = 4};
};
template <>
struct TypeRow<DType::F16> : RowBase<uint16_t, dequantize_f16_ref, quantize_f16_ref> {  // IEEE half bits
  static constexpr DTypeTraits facts{.type = DType::F16, .name = "f16", .block_size = 1, .block_bytes = 2};
};
template <>
struct TypeRow<DType::BF16> : RowBase<uint16_t, dequantize_bf16_ref, quantize_bf16_ref> {  // a float's high half
  static constexpr DTypeTraits facts{.type = DType::BF16, .name = "bf16", .block_size = 1, .block_bytes = 2};
};

// Legacy types: self-contained blocks of 32.
template <>
struct TypeRow<DType::Q8_0> : RowBase<BlockQ8_0, dequantize_q8_0_ref, quantize_q8_0_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q8_0, .name = "q8_0", .block_size = kQK, .block_bytes = 34,
                                     .signed_quants = true, .int8_scale_group = 32};
};
template <>
struct TypeRow<DType::Q4_0> : RowBase<BlockQ4_0, dequantize_q4_0_ref, quantize_q4_0_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q4_0, .name = "q4_0", .block_size = kQK, .block_bytes = 18,
                                     .offset = 8, .int8_scale_group = 32};
};
template <>
struct TypeRow<DType::Q4_1> : RowBase<BlockQ4_1, dequantize_q4_1_ref, quantize_q4_1_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q4_1, .name = "q4_1", .block_size = kQK, .block_bytes = 20,
                                     .has_min = true, .int8_scale_group = 32};
};
template <>
struct TypeRow<DType::Q5_0> : RowBase<BlockQ5_0, dequantize_q5_0_ref, quantize_q5_0_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q5_0, .name = "q5_0", .block_size = kQK, .block_bytes = 22,
                                     .offset = 16, .int8_scale_group = 32};
};
template <>
struct TypeRow<DType::Q5_1> : RowBase<BlockQ5_1, dequantize_q5_1_ref, quantize_q5_1_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q5_1, .name = "q5_1", .block_size = kQK, .block_bytes = 24,
                                     .has_min = true, .int8_scale_group = 32};
};

// k-quants: super-blocks of 256 in sub-blocks with packed scales.
// Low-bit k-quants (quant_k_low.cpp): 16-element sub-blocks, so two scales
// (and for q2_k two minima) per 32-element chunk of the integer products.
template <>
struct TypeRow<DType::Q2_K> : RowBase<BlockQ2_K, dequantize_q2_k_ref, quantize_q2_k_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q2_K, .name = "q2_k", .block_size = kQKK, .block_bytes = 84,
                                     .super_block = true, .has_min = true, .int8_scale_group = 16,
                                     .fallback = DType::Q4_0};  // llama.cpp's tensor_type_fallback
};
template <>
struct TypeRow<DType::Q3_K> : RowBase<BlockQ3_K, dequantize_q3_k_ref, quantize_q3_k_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q3_K, .name = "q3_k", .block_size = kQKK, .block_bytes = 110,
                                     .super_block = true, .offset = 4, .int8_scale_group = 16,
                                     .fallback = DType::Q4_0};  // llama.cpp's tensor_type_fallback
};
template <>
struct TypeRow<DType::Q4_K> : RowBase<BlockQ4_K, dequantize_q4_k_ref, quantize_q4_k_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q4_K, .name = "q4_k", .block_size = kQKK, .block_bytes = 144,
                                     .super_block = true, .has_min = true, .int8_scale_group = 32,
                                     .fallback = DType::Q5_0};
};
template <>
struct TypeRow<DType::Q5_K> : RowBase<BlockQ5_K, dequantize_q5_k_ref, quantize_q5_k_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q5_K, .name = "q5_k", .block_size = kQKK, .block_bytes = 176,
                                     .super_block = true, .has_min = true, .int8_scale_group = 32,
                                     .fallback = DType::Q5_1};
};
template <>
struct TypeRow<DType::Q6_K> : RowBase<BlockQ6_K, dequantize_q6_k_ref, quantize_q6_k_ref> {
  static constexpr DTypeTraits facts{.type = DType::Q6_K, .name = "q6_k", .block_size = kQKK, .block_bytes = 210,
                                     .super_block = true, .offset = 32, .int8_scale_group = 16,
                                     .fallback = DType::Q8_0};
};
// Non-linear 4-bit types: indices into kIq4nlValues.
template <>
struct TypeRow<DType::IQ4_NL> : RowBase<BlockIQ4_NL, dequantize_iq4_nl_ref, quantize_iq4_nl_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ4_NL, .name = "iq4_nl", .block_size = kQK, .block_bytes = 18,
                                     .values = kIq4nlValues, .nonlinear = true, .int8_scale_group = 32};
};
template <>
struct TypeRow<DType::IQ4_XS> : RowBase<BlockIQ4_XS, dequantize_iq4_xs_ref, quantize_iq4_xs_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ4_XS, .name = "iq4_xs", .block_size = kQKK, .block_bytes = 136,
                                     .super_block = true, .values = kIq4nlValues, .nonlinear = true, .int8_scale_group = 32,
                                     .fallback = DType::IQ4_NL};
};

// Lattice i-quants: 8 or 4 elements per grid entry (tensor/iq_grids.h),
// integers and scales per sub-block from iq_sub_block (tensor/quant_iq_low.h).
// Rows their super-blocks do not divide fall back to iq4_nl, as in llama.cpp.
template <>
struct TypeRow<DType::IQ2_XXS> : RowBase<BlockIQ2_XXS, dequantize_iq2_xxs_ref, quantize_iq2_xxs_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ2_XXS, .name = "iq2_xxs", .block_size = kQKK, .block_bytes = 66,
                                     .super_block = true, .lattice = true, .int8_scale_group = 32,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ2_XS> : RowBase<BlockIQ2_XS, dequantize_iq2_xs_ref, quantize_iq2_xs_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ2_XS, .name = "iq2_xs", .block_size = kQKK, .block_bytes = 74,
                                     .super_block = true, .lattice = true, .int8_scale_group = 16,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ3_XXS> : RowBase<BlockIQ3_XXS, dequantize_iq3_xxs_ref, quantize_iq3_xxs_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ3_XXS, .name = "iq3_xxs", .block_size = kQKK, .block_bytes = 98,
                                     .super_block = true, .lattice = true, .int8_scale_group = 32,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ1_S> : RowBase<BlockIQ1_S, dequantize_iq1_s_ref, quantize_iq1_s_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ1_S, .name = "iq1_s", .block_size = kQKK, .block_bytes = 50,
                                     .super_block = true, .lattice = true, .int8_scale_group = 32,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ3_S> : RowBase<BlockIQ3_S, dequantize_iq3_s_ref, quantize_iq3_s_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ3_S, .name = "iq3_s", .block_size = kQKK, .block_bytes = 110,
                                     .super_block = true, .lattice = true, .int8_scale_group = 32,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ2_S> : RowBase<BlockIQ2_S, dequantize_iq2_s_ref, quantize_iq2_s_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ2_S, .name = "iq2_s", .block_size = kQKK, .block_bytes = 82,
                                     .super_block = true, .lattice = true, .int8_scale_group = 16,
                                     .fallback = DType::IQ4_NL};
};
template <>
struct TypeRow<DType::IQ1_M> : RowBase<BlockIQ1_M, dequantize_iq1_m_ref, quantize_iq1_m_ref> {
  static constexpr DTypeTraits facts{.type = DType::IQ1_M, .name = "iq1_m", .block_size = kQKK, .block_bytes = 56,
                                     .super_block = true, .lattice = true, .int8_scale_group = 16,
                                     .fallback = DType::IQ4_NL};
};

// ------------------------------------------------------- derived from the rows

template <DType T>
concept HasTypeRow = requires { TypeRow<T>::facts; };

// The facts and block struct of a compile-time type.
template <DType T>
inline constexpr const DTypeTraits& kFacts = TypeRow<T>::facts;
template <DType T>
using BlockOf = typename TypeRow<T>::Block;

// ggml type ids stay below this bound (the highest known is 39).
inline constexpr uint32_t kTypeIdBound = 64;

namespace detail {
template <uint32_t... Ids>
constexpr auto types_with_rows(std::integer_sequence<uint32_t, Ids...>) {
  constexpr size_t n = (size_t{0} + ... + (HasTypeRow<static_cast<DType>(Ids)> ? 1 : 0));
  std::array<DType, n> out{};
  size_t i = 0;
  ((HasTypeRow<static_cast<DType>(Ids)> ? (out[i++] = static_cast<DType>(Ids), 0) : 0), ...);
  return out;
}
}  // namespace detail

// Every type with a row, in ascending ggml id.
inline constexpr auto kSupportedTypes = detail::types_with_rows(std::make_integer_sequence<uint32_t, kTypeIdBound>{});

namespace detail {
template <size_t... I>
constexpr bool block_structs_match_rows(std::index_sequence<I...>) {
  return ((sizeof(BlockOf<kSupportedTypes[I]>) == static_cast<size_t>(kFacts<kSupportedTypes[I]>.block_bytes)) && ...);
}
}  // namespace detail
static_assert(detail::block_structs_match_rows(std::make_index_sequence<kSupportedTypes.size()>{}),
              "a block struct's size differs from its row's block bytes");

// Filters for visit_dtype.
constexpr bool any_type(const DTypeTraits&) { return true; }
constexpr bool int8_type(const DTypeTraits& f) { return f.int8_scale_group > 0; }

namespace detail {
template <DType T, auto Filter, typename Fn>
bool call_if(Fn& fn) {
  if constexpr (Filter(kFacts<T>)) {
    fn.template operator()<T>();
    return true;
  } else {
    return false;
  }
}
template <auto Filter, typename Fn, size_t... I>
bool visit(DType t, Fn& fn, std::index_sequence<I...>) {
  bool called = false;
  (void)((t == kSupportedTypes[I] ? (called = call_if<kSupportedTypes[I], Filter>(fn), true) : false) || ...);
  return called;
}
}  // namespace detail

// Calls fn.template operator()<T>() (a lambda `[&]<DType T>() { ... }`) with
// the compile-time type equal to `t`, instantiating it only for the types
// Filter accepts. Returns false, without calling, when `t` has no row or the
// filter refuses it.
template <auto Filter = any_type, typename Fn>
bool visit_dtype(DType t, Fn&& fn) {
  return detail::visit<Filter>(t, fn, std::make_index_sequence<kSupportedTypes.size()>{});
}

}  // namespace volga
