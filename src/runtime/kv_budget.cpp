#include "runtime/kv_budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/kv_cache.h"
#include "util/error.h"

namespace volga {

int64_t KvBudget::positions() const { return n_blocks * KvCache::kBlockTokens; }

int64_t parse_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  if (used == 0 || scale == 0 || !(value > 0) || value * scale > 9.0e18)
    throw Error("'" + text + "' is not a size: write a number with an optional unit, e.g. 8G, 512M or 1.5GiB");
  return static_cast<int64_t>(value * scale);
}

std::string format_size(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;
}

KvBudget plan_kv_budget(const ModelSpec& spec, DType type_k, DType type_v, int n_seq, int n_ctx,
                        int64_t requested_bytes, int64_t model_bytes) {
  KvCache::check_types(spec, type_k, type_v);
  KvBudget b;
  b.block_bytes = KvCache::block_bytes_for(spec, type_k, type_v);
  const int64_t per_seq = KvCache::blocks_for(n_ctx), want = per_seq * n_seq;
  b.snapshot_bytes = spec.recurrent_state_floats() * 4;
  if (b.snapshot_bytes > 0) b.n_snapshots = KvCache::default_snapshots(n_seq);
  if (requested_bytes > 0) {
    if (b.n_snapshots > 0)  // leave room for one block at least
      b.n_snapshots = static_cast<int>(std::clamp<int64_t>((requested_bytes - b.block_bytes) / b.snapshot_bytes, 0,
                                                           b.n_snapshots));
    b.n_blocks = (requested_bytes - b.n_snapshots * b.snapshot_bytes) / b.block_bytes;
    if (b.n_blocks < 1)
      throw Error("--kv-memory " + format_size(requested_bytes) + " holds no KV cache block: one block of " +
                  std::to_string(KvCache::kBlockTokens) + " positions takes " + format_size(b.block_bytes) +
                  " for this model");
    b.origin = "--kv-memory";
    return b;
  }
  const int64_t avail = available_memory();
  if (avail < 0) {
    b.n_blocks = want;
    b.origin = "room for every sequence at full context";
    return b;
  }
  // Hybrid models also keep a fixed recurrent state per sequence beside the blocks.
  const int64_t state_bytes = (static_cast<int64_t>(n_seq) + b.n_snapshots) * b.snapshot_bytes;
  const int64_t room =
      std::max<int64_t>(0, static_cast<int64_t>(0.7 * static_cast<double>(avail - model_bytes - state_bytes)));
  if (want * b.block_bytes <= room) {
    b.n_blocks = want;
    b.origin = "room for every sequence at full context";
  } else {
    b.n_blocks = room / b.block_bytes;
    b.origin = "70% of the free memory after the model; set --kv-memory to change it";
  }
  b.n_blocks = std::max<int64_t>(b.n_blocks, 1);
  return b;
}

std::string describe_kv_budget(const KvBudget& b, DType type_k, DType type_v, int n_ctx) {
  std::string types = type_k == type_v ? dtype_name(type_k) : std::string(dtype_name(type_k)) + "/" + dtype_name(type_v);
  const int64_t full = b.positions() / std::max(1, n_ctx);
  std::string s = "KV cache " + types + ": " + format_size(b.bytes()) + " (" + b.origin + "), " +
                  std::to_string(b.n_blocks) + " blocks of " + std::to_string(KvCache::kBlockTokens) + " positions";
  if (b.snapshot_bytes > 0)
    s += " and " + std::to_string(b.n_snapshots) + " recurrent-state snapshots of " + format_size(b.snapshot_bytes);
  s += "; ";
  if (full >= 1)
    s += std::to_string(full) + (full == 1 ? " sequence" : " sequences") + " of " + std::to_string(n_ctx) +
         " tokens fit at once";
  else
    s += "a request is limited to " + std::to_string(b.positions()) + " tokens (less than the context of " +
         std::to_string(n_ctx) + ")";
  return s;
}

}  // namespace volga
