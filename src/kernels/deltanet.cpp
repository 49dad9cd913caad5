// Choice of the Gated DeltaNet kernel set: the one of the main table's ISA.
#include "kernels/deltanet.h"

namespace volga::kernels {

const DeltaNetKernels& deltanet_kernels(Isa isa) {
  (void)kernel_table(isa);  // throws when the ISA is not available
  switch (isa) {
#if defined(__x86_64__)
    case Isa::Avx2: return deltanet_avx2_kernels();
    case Isa::Avx512: return deltanet_avx512_kernels();
#endif
    default: return deltanet_ref_kernels();
  }
}

const DeltaNetKernels& active_deltanet_kernels() {
  static const DeltaNetKernels& table = deltanet_kernels(active_kernels().isa);
  return table;
}

}  // namespace volga::kernels
