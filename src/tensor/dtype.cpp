// The run-time table of type facts, built from the rows of tensor/type_traits.h.
#include "tensor/dtype.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "tensor/type_traits.h"
#include "util/error.h"

namespace volga {

namespace {
template <size_t... I>
constexpr std::array<DTypeTraits, sizeof...(I)> facts_of_rows(std::index_sequence<I...>) {
  return {kFacts<kSupportedTypes[I]>...};
}
constexpr auto kTraits = facts_of_rows(std::make_index_sequence<kSupportedTypes.size()>{});

// ggml's names for every type id it has had, so errors can name what a file uses.
constexpr const char* kGgmlNames[] = {
    "f32",  "f16",     "q4_0",    "q4_1",   "q4_2(removed)", "q4_3(removed)", "q5_0",
    "q5_1", "q8_0",    "q8_1",    "q2_k",   "q3_k",          "q4_k",          "q5_k",
    "q6_k", "q8_k",    "iq2_xxs", "iq2_xs", "iq3_xxs",       "iq1_s",         "iq4_nl",
    "iq3_s", "iq2_s",  "iq4_xs",  "i8",     "i16",           "i32",           "i64",
    "f64",  "iq1_m",   "bf16",    "q4_0_4_4", "q4_0_4_8",    "q4_0_8_8",      "tq1_0",
    "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4"};
}  // namespace

std::optional<DTypeTraits> dtype_traits(uint32_t id) {
  for (const auto& t : kTraits)
    if (static_cast<uint32_t>(t.type) == id) return t;
  return std::nullopt;
}

const DTypeTraits& traits(DType t) {
  for (const auto& tr : kTraits)
    if (tr.type == t) return tr;
  throw Error("internal: unknown dtype " + std::to_string(static_cast<uint32_t>(t)));
}

const char* dtype_name(DType t) { return traits(t).name; }

std::string ggml_type_name(uint32_t id) {
  if (id < sizeof(kGgmlNames) / sizeof(kGgmlNames[0])) return kGgmlNames[id];
  return "type " + std::to_string(id);
}

DType type_for_rows(DType want, int64_t cols) {
  DType t = want;
  while (cols % traits(t).block_size != 0) t = traits(t).fallback;
  return t;
}

std::string supported_dtype_names() {
  std::string out;
  for (const auto& t : kTraits) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

DType parse_dtype(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& t : kTraits)
    if (lower == t.name) return t.type;
  throw Error("unknown tensor type '" + name + "' (supported: " + supported_dtype_names() + ")");
}

}  // namespace volga
