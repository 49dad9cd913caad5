// volga quantize IN.gguf OUT.gguf MIX: re-quantize the matrices of a GGUF
// file to a named mix (Q4_K_M, Q3_K_S, ...) with llama.cpp's per-tensor
// rules (the name in any case, as llama-quantize reads it), or with --type to
// one type everywhere. Prints one line per tensor (what it was,
// what it becomes, and why when a fallback was needed) and a summary of the
// type mix actually written.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "format/gguf.h"
#include "runtime/imatrix.h"
#include "tensor/quant.h"
#include "tensor/quant_mix.h"
#include "util/error.h"

namespace volga::cli {

namespace {

struct QuantizeOptions {
  std::string in, out, target, type, output_type, token_embd_type, imatrix;
  bool pure = false, dry_run = false, quiet = false, without_imatrix = false;
  int threads = 0;
};

int64_t hparam(const GgufFile& f, const std::string& key, int64_t fallback) {
  const GgufValue* v = f.find(key);
  if (!v) return fallback;
  if (v->is_integer()) return f.get_int(key);
  if (v->type == GgufType::ARRAY && !v->array.empty() && v->array[0].is_integer()) {  // per-layer values
    int64_t most = 0;
    for (const GgufValue& e : v->array) {
      const bool is_signed = e.type == GgufType::INT8 || e.type == GgufType::INT16 || e.type == GgufType::INT32 ||
                             e.type == GgufType::INT64;
      most = std::max<int64_t>(most, is_signed ? e.i : static_cast<int64_t>(e.u));
    }
    return most;
  }
  throw Error(key + " is not an integer");
}

std::string mib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1024.0 * 1024.0));
  return buf;
}

// The importance of a tensor's columns: one vector per matrix (per expert
// of a 3-d expert tensor), or none when the file has no entry for it.
struct TensorImportance {
  std::vector<std::vector<float>> per_mat;
  int64_t rows_per_mat = 0;
};

TensorImportance tensor_importance(const Imatrix* im, const TensorInfo& t) {
  TensorImportance ti;
  if (!im || !im->entries.count(t.name)) return ti;
  const int64_t cols = t.ne[0];
  const int64_t n_mat = t.n_dims >= 3 ? t.n_elements() / (cols * t.ne[1]) : 1;
  ti.rows_per_mat = t.n_elements() / cols / n_mat;
  for (int64_t m = 0; m < n_mat; ++m) ti.per_mat.push_back(im->weights(t.name, m, cols));
  return ti;
}

// Rows of `cols` floats encoded in `type`, split over threads by rows,
// weighted by the columns' importance when there is one.
std::vector<uint8_t> encode(DType type, const float* data, int64_t cols, int64_t rows, int threads,
                            const TensorImportance& imp) {
  const int64_t rb = row_bytes(type, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rb * rows));
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(threads, rows));
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < n; ++t)
    pool.emplace_back([&, t] {
      for (int64_t r = rows * t / n; r < rows * (t + 1) / n; ++r) {
        const float* w = imp.per_mat.empty() ? nullptr : imp.per_mat[static_cast<size_t>(r / imp.rows_per_mat)].data();
        quantize_row(type, data + r * cols, out.data() + r * rb, cols, w);
      }
    });
  for (auto& th : pool) th.join();
  return out;
}

// Every tensor the plan puts in a 1-2-bit type needs the importance of its
// columns: refused without (unless --without-imatrix), as llama-quantize does.
void check_imatrix_coverage(const QuantMix& mix, const std::vector<MixTensor>& tensors,
                            const std::vector<MixChoice>& plan, const Imatrix* im, bool without_imatrix) {
  for (size_t k = 0; k < plan.size(); ++k) {
    if (!plan[k].quantize || !plan[k].needs_imatrix) continue;
    const std::string what = std::string("the ") + mix.name + " mix puts " + tensors[k].name + " in " +
                             dtype_name(plan[k].type) + ", which needs an importance matrix for usable quality";
    if (im && im->entries.count(tensors[k].name)) continue;
    if (im && !without_imatrix)
      throw Error(what + ", and " + "the importance matrix has no entry for it: it was made for another model, "
                  "or without this tensor");
    if (!without_imatrix)
      throw Error(what + ". Make one with `volga imatrix MODEL TEXT -o imatrix.gguf` (a few thousand tokens of text "
                  "like the model's use) and pass --imatrix imatrix.gguf; or choose a mix of 3 bits or more (e.g. "
                  "Q3_K_M, IQ4_XS, Q4_K_M), or pass --without-imatrix to quantize anyway with much lower quality "
                  "(for tests)");
    std::fprintf(stderr, "volga: warning: %s; quantizing without one (--without-imatrix): expect much lower "
                         "quality than with one\n", what.c_str());
    return;
  }
}

// The mix the command line asks for: a named mix (any case, as llama-quantize
// reads it), or with --type one type for every matrix (held in `storage`).
const QuantMix& resolve_target(const QuantizeOptions& o, QuantMix& storage, std::string& storage_name) {
  if (!o.type.empty() && !o.target.empty())
    throw Error("give a mix (e.g. Q4_K_M) or --type TYPE, not both: '" + o.target + "' and --type " + o.type);
  if (!o.type.empty()) {
    const DType t = parse_dtype(o.type);
    storage_name = dtype_name(t);
    storage = {storage_name.c_str(), pure_file_type(t).value_or(0), storage_name.c_str(), ""};
    return storage;
  }
  if (o.target.empty()) throw Error("give a mix (e.g. Q4_K_M; volga quantize --help lists them) or --type TYPE");
  if (const QuantMix* mix = find_quant_mix(o.target)) return *mix;
  std::string names;
  for (const QuantMix& m : quant_mixes()) names += (names.empty() ? "" : " ") + std::string(m.name);
  throw Error("'" + o.target + "' is not a quantization mix (" + names + "); for one type in every matrix use "
              "--type TYPE (" + supported_dtype_names() + ")");
}

int run_quantize(const QuantizeOptions& o) {
  if (o.in == o.out) throw Error("input and output are the same file");
  QuantMix type_mix{};
  std::string type_name;
  const QuantMix* mix = &resolve_target(o, type_mix, type_name);
  const bool pure = o.pure || !o.type.empty();
  MixOptions mo;
  mo.pure = pure;
  if (!o.output_type.empty()) mo.output_type = parse_dtype(o.output_type);
  if (!o.token_embd_type.empty()) mo.token_embd_type = parse_dtype(o.token_embd_type);

  auto f = GgufFile::open(o.in);
  const std::string arch = f->get_string_opt("general.architecture").value_or("");
  MixModel mm;
  mm.n_layer = hparam(*f, arch + ".block_count", 0);
  mm.n_head = hparam(*f, arch + ".attention.head_count", 0);
  mm.n_head_kv = hparam(*f, arch + ".attention.head_count_kv", mm.n_head);
  mm.n_expert = hparam(*f, arch + ".expert_count", 0);
  std::vector<MixTensor> tensors;
  for (const TensorInfo& t : f->tensors()) tensors.push_back({t.name, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.type});
  std::optional<Imatrix> imatrix;
  if (!o.imatrix.empty()) {
    imatrix = read_imatrix(o.imatrix);
    mo.has_imatrix = true;
    if (!o.quiet)
      std::fprintf(stderr, "importance matrix %s: %zu matrices, %lld chunks\n", o.imatrix.c_str(),
                   imatrix->entries.size(), static_cast<long long>(imatrix->chunk_count));
  }
  const std::vector<MixChoice> plan = plan_quant_mix(*mix, tensors, mm, mo);
  check_imatrix_coverage(*mix, tensors, plan, imatrix ? &*imatrix : nullptr, o.without_imatrix);

  const int threads = resolve_threads(o.threads);
  GgufWriter w(f->alignment());
  for (const auto& [key, value] : f->metadata()) w.set(key, value);
  if (mix->file_type != 0 || std::string(mix->base_type) == "f32") w.set_u32("general.file_type", mix->file_type);
  w.set_u32("general.quantization_version", 2);
  struct Tally {
    int64_t tensors = 0, bytes = 0, elements = 0;
  };
  std::map<std::string, Tally> by_type;
  int64_t in_bytes = 0, matrix_bytes = 0, matrix_elements = 0, fallbacks = 0, no_importance = 0;
  bool warned = false;
  const auto& ts = f->tensors();
  for (size_t k = 0; k < ts.size(); ++k) {
    const TensorInfo& t = ts[k];
    const MixChoice& c = plan[k];
    std::vector<int64_t> dims(t.ne, t.ne + t.n_dims);
    in_bytes += static_cast<int64_t>(t.n_bytes);
    const int64_t cols = t.ne[0], rows = t.n_elements() / cols;
    const int64_t out_bytes = c.quantize ? row_bytes(c.type, cols) * rows : static_cast<int64_t>(t.n_bytes);
    Tally& tally = by_type[dtype_name(c.type)];
    tally.tensors += 1;
    tally.bytes += out_bytes;
    tally.elements += t.n_elements();
    if (c.quantize) {
      matrix_bytes += out_bytes;
      matrix_elements += t.n_elements();
    }
    if (!c.fallback.empty()) ++fallbacks;
    if (!o.quiet) {
      std::string line = "[" + std::to_string(k + 1) + "/" + std::to_string(ts.size()) + "] " + t.name + " " +
                         t.shape_string() + " " + dtype_name(t.type);
      line += c.quantize && c.type != t.type ? std::string(" -> ") + dtype_name(c.type) : " (kept)";
      line += ", " + mib(static_cast<double>(out_bytes));
      if (!c.fallback.empty()) line += "; fallback: " + c.fallback;
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    if (o.dry_run) continue;
    if (!c.quantize || c.type == t.type) {
      w.add_tensor(t.name, t.type, dims, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
      continue;
    }
    if (!warned && t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16) {
      std::fprintf(stderr, "volga: warning: re-quantizing from %s adds that type's error to the new one's; "
                           "quantize from an F32/F16/BF16 file for the best quality\n", dtype_name(t.type));
      warned = true;
    }
    std::vector<float> data(static_cast<size_t>(t.n_elements()));
    const int64_t rb = row_bytes(t.type, cols);
    for (int64_t r = 0; r < rows; ++r) dequantize_row(t.type, t.data + r * rb, data.data() + r * cols, cols);
    const TensorImportance imp = tensor_importance(imatrix ? &*imatrix : nullptr, t);
    if (imatrix && imp.per_mat.empty()) ++no_importance;
    w.add_tensor(t.name, c.type, dims, encode(c.type, data.data(), cols, rows, threads, imp));
  }
  if (!o.dry_run) w.write(o.out);
  if (o.quiet && fallbacks > 0) {  // a type other than the one asked for is said even when quiet
    std::string names;
    int listed = 0;
    for (size_t k = 0; k < plan.size() && listed < 4; ++k)
      if (!plan[k].fallback.empty()) {
        names += std::string(listed++ ? ", " : "") + ts[k].name + " -> " + dtype_name(plan[k].type);
      }
    std::fprintf(stderr, "volga: %lld tensors took a fallback type (rows not a whole number of blocks): %s%s\n",
                 static_cast<long long>(fallbacks), names.c_str(), fallbacks > listed ? ", ..." : "");
  }
  if (!o.quiet) {
    int64_t out_bytes = 0;
    for (const auto& [name, tally] : by_type) out_bytes += tally.bytes;
    std::fprintf(stderr, "\n%s %s (%s): %zu tensors\n", o.dry_run ? "would write" : "wrote", o.out.c_str(), mix->name,
                 ts.size());
    std::fprintf(stderr, "  %-8s %8s %14s %10s\n", "type", "tensors", "size", "bits/wt");
    for (const auto& [name, tally] : by_type)
      std::fprintf(stderr, "  %-8s %8lld %14s %10.2f\n", name.c_str(), static_cast<long long>(tally.tensors),
                   mib(static_cast<double>(tally.bytes)).c_str(),
                   tally.elements ? 8.0 * static_cast<double>(tally.bytes) / static_cast<double>(tally.elements) : 0.0);
    std::fprintf(stderr, "  tensor data %s (input %s); the quantized matrices average %.2f bits per weight\n",
                 mib(static_cast<double>(out_bytes)).c_str(), mib(static_cast<double>(in_bytes)).c_str(),
                 matrix_elements ? 8.0 * static_cast<double>(matrix_bytes) / static_cast<double>(matrix_elements) : 0.0);
    if (fallbacks)
      std::fprintf(stderr, "  %lld tensors took a fallback type: their rows are not a whole number of blocks\n",
                   static_cast<long long>(fallbacks));
    if (imatrix)
      std::fprintf(stderr, "  %lld quantized tensors had no entry in the importance matrix (quantized unweighted)\n",
                   static_cast<long long>(no_importance));
  }
  return 0;
}

}  // namespace

Command add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  std::string mixes;
  for (const QuantMix& m : quant_mixes()) mixes += std::string("\n  ") + m.name + ": " + m.description;
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Re-quantize the weight matrices of a GGUF model to a named mix with llama.cpp's per-tensor rules, or to one "
      "type with --type (norms, routers and biases are kept). Mixes (any case; Q3_K, Q4_K, Q5_K are aliases of "
      "the _M mixes, as in llama-quantize):" + mixes);
  cmd->add_option("input", o->in, "Input GGUF file (best from F32/F16/BF16)")->required()->check(CLI::ExistingFile);
  cmd->add_option("output", o->out, "Output GGUF file")->required();
  cmd->add_option("mix", o->target,
                  "A mix, in any case, as llama-quantize reads it (Q4_K_M, q8_0, ...; Q3_K, Q4_K, Q5_K are the _M "
                  "mixes)");
  cmd->add_option("--type", o->type,
                  "Instead of a mix: this one type for every matrix, no per-tensor rules (q4_k, iq2_s, ...)");
  cmd->add_option("--output-tensor-type", o->output_type, "Type of output.weight (and of tied token embeddings)");
  cmd->add_option("--token-embedding-type", o->token_embd_type, "Type of token_embd.weight");
  cmd->add_flag("--pure", o->pure, "Every matrix the mix's base type: no per-tensor rules (fallbacks still apply)");
  cmd->add_option("--imatrix", o->imatrix,
                  "Importance matrix (volga imatrix or llama-imatrix; GGUF or legacy .dat): the quantizers weigh each "
                  "column's error by it. Required by the 1-2-bit types")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--without-imatrix", o->without_imatrix,
                "Quantize 1-2-bit types even without an importance matrix (much lower quality; for tests)");
  cmd->add_flag("--dry-run", o->dry_run, "Print the type each tensor would get and the summary; write nothing");
  add_threads_option(cmd, o->threads);
  cmd->add_flag("-q,--quiet", o->quiet, "No per-tensor lines or summary");
  return [o]() { return run_quantize(*o); };
}

}  // namespace volga::cli
