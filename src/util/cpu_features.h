// CPU features relevant to kernel selection, detected once (CPUID on x86-64;
// nothing on other architectures, which use the scalar reference kernels).
#pragma once

#include <string>

namespace volga {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx_vnni = false;
  std::string describe() const;  // e.g. "avx2 fma f16c avx512f ..."
};

const CpuFeatures& cpu_features();

}  // namespace volga
