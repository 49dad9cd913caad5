#include "format/gguf.h"
#include "model/architectures.h"
#include "model/model.h"

namespace volga {

std::unique_ptr<Model> load_model(const GgufFile& file, ThreadPool& pool) {
  // read_model_spec (called by every factory) rejects unknown architectures.
  if (file.get_string_opt("general.architecture").value_or("") == "deepseek2") return make_mla_decoder(file, pool);
  return make_dense_decoder(file, pool);
}

}  // namespace volga
