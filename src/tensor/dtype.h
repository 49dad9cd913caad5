// Tensor element types with their GGUF/ggml type ids, and the run-time view
// of their facts. The facts themselves are written once, in one row per type
// (tensor/type_traits.h). A row of `n` elements of a block type occupies
// n / block_size * block_bytes bytes; n must be a multiple of block_size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace volga {

// Values are the ggml_type ids stored in GGUF files.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  IQ1_M = 29,
  BF16 = 30,
};

struct DTypeTraits {
  DType type;
  const char* name;  // lower-case, as users type it: "q4_k"
  int64_t block_size;  // elements per block
  int64_t block_bytes;  // bytes per block
  // 256-element super-block whose 32-element sub-blocks carry their own
  // packed scales (the k-quants); otherwise blocks are self-contained.
  bool super_block = false;
  // Values are scale * q + min (asymmetric); otherwise scale * q.
  bool has_min = false;
  // Integers stored unsigned as n, with q = n - offset (q4_0: 8, q5_0: 16, q6_k: 32).
  int32_t offset = 0;
  // Integers stored as signed bytes (q8_0).
  bool signed_quants = false;
  // Non-linear types: the integer of a stored 4-bit index n is values[n].
  // `nonlinear` says so at compile time (comparing an address with null is
  // not a constant expression under the sanitizers).
  const int8_t* values = nullptr;
  bool nonlinear = false;
  // The lattice i-quants (iq2_*, iq3_*, iq1_*): 8 or 4 elements per grid
  // entry (tensor/iq_grids.h), unpacked per 32-element sub-block by
  // iq_sub_block (tensor/quant_iq_low.h).
  bool lattice = false;
  // Integer products (kernels/dispatch.h): elements of a weight row per weight
  // scale, 32 or 16, against activations quantized in chunks of 32; 0 for
  // types those products do not take.
  int int8_scale_group = 0;
  // llama.cpp's choice for a matrix whose rows this type's blocks do not
  // divide (see type_for_rows).
  DType fallback = DType::F16;
};

// Traits of a supported type; nullopt for an id Volga does not implement.
std::optional<DTypeTraits> dtype_traits(uint32_t ggml_type_id);
const DTypeTraits& traits(DType t);
const char* dtype_name(DType t);
// The name ggml gives to an id, even unsupported ones ("q2_k", "iq4_xs"...), or "type N".
std::string ggml_type_name(uint32_t ggml_type_id);
// `want`, or the first of its fallbacks whose blocks divide rows of `cols`
// elements (q4_k -> q5_0 -> f16), as llama.cpp quantizes such matrices.
DType type_for_rows(DType want, int64_t cols);
// "f32, f16, q4_0, ...": every supported type, for error messages.
std::string supported_dtype_names();
// Parses "f32", "q4_k", "Q8_0"... Throws volga::Error on an unknown name.
DType parse_dtype(const std::string& name);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(DType t, int64_t n) {
  const DTypeTraits& tr = traits(t);
  return n / tr.block_size * tr.block_bytes;
}

}  // namespace volga
