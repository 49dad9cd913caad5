// libFuzzer target for the messages between MPI pipeline stages
// (runtime/pipeline_message.h): any input either decodes or throws
// volga::Error; what decodes is mirrored into a small cache without reading
// or writing outside it.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "runtime/pipeline_message.h"
#include "util/error.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  volga::StageMessage m;
  try {
    m = volga::decode_stage_message(bytes);
  } catch (const volga::Error&) {
    return 0;
  }
  if (m.header.op != static_cast<int64_t>(volga::StageOp::Forward)) return 0;
  FUZZ_CHECK(m.x.size() == m.batch.size() * static_cast<size_t>(m.header.n_embd));
  volga::ModelSpec spec;
  spec.n_layer = 1;
  spec.n_embd = 4;
  spec.n_head = spec.n_head_kv = 1;
  spec.head_dim_k = spec.head_dim_v = 32;
  volga::KvCacheOptions o;
  o.n_seq = 4;
  o.n_ctx = 128;
  o.type_k = o.type_v = volga::DType::F32;
  volga::KvCache cache(spec, o);
  try {
    volga::mirror_into(m, cache);
  } catch (const volga::Error&) {
  }
  return 0;
}
