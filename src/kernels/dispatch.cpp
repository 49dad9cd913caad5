#include "kernels/dispatch.h"

#include <cstdlib>

#include "util/cpu_features.h"
#include "util/error.h"

namespace volga::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "ref") return Isa::Ref;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  throw Error("unknown instruction set '" + name + "' (VOLGA_ISA accepts ref, avx2, avx512)");
}

bool isa_available(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Ref: return true;
#if defined(__x86_64__)
    case Isa::Avx2: return f.avx2 && f.fma && f.f16c;
    case Isa::Avx512: return f.avx512f && f.avx512bw && f.avx512vl && f.fma && f.f16c;
#else
    default: (void)f; return false;
#endif
  }
  return false;
}

const KernelTable& kernel_table(Isa isa) {
  if (!isa_available(isa))
    throw Error(std::string("instruction set '") + isa_name(isa) + "' is not supported by this CPU (it has: " +
                cpu_features().describe() + ")");
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx2: return avx2_kernels();
    case Isa::Avx512: return avx512_kernels();
#endif
    default: return ref_kernels();
  }
}

bool int8_matmul_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("VOLGA_MATMUL");
    if (!env || !*env || std::string(env) == "int8") return true;
    if (std::string(env) == "float") return false;
    throw Error(std::string("unknown VOLGA_MATMUL '") + env + "' (accepts int8, float)");
  }();
  return enabled;
}

const KernelTable& active_kernels() {
  static const KernelTable& table = []() -> const KernelTable& {
    int8_matmul_enabled();  // a bad VOLGA_MATMUL fails here, at start-up, not in the first product
    if (const char* env = std::getenv("VOLGA_ISA"); env && *env) return kernel_table(parse_isa(env));
    for (Isa isa : {Isa::Avx512, Isa::Avx2})
      if (isa_available(isa)) return kernel_table(isa);
    return ref_kernels();
  }();
  return table;
}

}  // namespace volga::kernels
