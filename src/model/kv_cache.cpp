#include "model/kv_cache.h"

#include "util/error.h"

namespace volga {

KvCache::KvCache(const ModelSpec& spec, int n_seq, int n_ctx)
    : n_seq_(n_seq), n_ctx_(n_ctx),
      k_width_(spec.kv_key_width()), v_width_(spec.kv_value_width()) {
  if (n_seq <= 0 || n_ctx <= 0) throw Error("KV cache needs at least one sequence and one position");
  size_t per = static_cast<size_t>(spec.n_layer) * n_seq * n_ctx;
  k_.assign(per * static_cast<size_t>(k_width_), 0.0f);
  v_.assign(per * static_cast<size_t>(v_width_), 0.0f);
  length_.assign(static_cast<size_t>(n_seq), 0);
}

void KvCache::truncate(int seq, int n) {
  int& len = length_.at(static_cast<size_t>(seq));
  if (n < len) len = n < 0 ? 0 : n;
}

}  // namespace volga
