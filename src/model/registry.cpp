#include "format/gguf.h"
#include "model/architectures.h"
#include "model/model.h"

namespace volga {

std::unique_ptr<Model> load_model(const GgufFile& file, ThreadPool& pool) {
  // read_model_spec (called by every factory) rejects unknown architectures.
  return make_dense_decoder(file, pool);
}

}  // namespace volga
