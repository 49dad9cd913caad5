// volga logits MODEL --ids ... --out FILE.npy: the logits of every prompt
// position, for comparison with independent reference implementations.
#include <tuple>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "cli/commands.h"
#include "format/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga::cli {

namespace {
// Writes a float32 C-order .npy file of shape [rows, cols].
void write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("cannot create '" + path + "'");
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  uint16_t hl = static_cast<uint16_t>(header.size());
  bool ok = std::fwrite(magic, 1, 8, f) == 8 && std::fwrite(&hl, 2, 1, f) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), sizeof(float), data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw Error("cannot write '" + path + "'");
}
}  // namespace

Command add_logits(CLI::App& app) {
  struct Opt {
    std::string model, ids, prompt, out;
    int threads = 0, chunk = 0;
    KvFlags kv{"f32", "", "", ""};  // exact comparisons with reference implementations
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits of every prompt position to a .npy file (for checking against reference implementations)");
  cmd->add_option("model", o->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  auto* ids = cmd->add_option("--ids", o->ids, "Comma-separated token ids");
  cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize instead of --ids")->excludes(ids);
  cmd->add_option("-o,--out", o->out, "Output .npy file (float32, [tokens, vocabulary])")->required();
  cmd->add_option("--chunk", o->chunk, "Tokens per forward pass (default: all at once)");
  add_threads_option(cmd, o->threads);
  add_kv_options(cmd, o->kv, false);
  return [o]() -> int {
    auto file = GgufFile::open(o->model);
    std::vector<int32_t> tokens;
    if (!o->ids.empty()) {
      std::stringstream ss(o->ids);
      std::string item;
      while (std::getline(ss, item, ',')) {
        try {
          tokens.push_back(std::stoi(item));
        } catch (const std::exception&) {
          throw Error("--ids: '" + item + "' is not a token id");
        }
      }
    } else {
      tokens = Tokenizer::from_gguf(*file)->encode(o->prompt, true, false);
    }
    if (tokens.empty()) throw Error("no tokens: give --ids or --prompt");
    ThreadPool pool(resolve_threads(o->threads));
    auto model = load_model(*file, pool);
    const int n = static_cast<int>(tokens.size());
    KvCacheOptions ko;
    ko.n_ctx = n;
    std::tie(ko.type_k, ko.type_v) = kv_types(o->kv);
    KvCache cache(model->spec(), ko);
    const int chunk = o->chunk > 0 ? o->chunk : n;
    std::vector<float> all;
    for (int i = 0; i < n; i += chunk) {
      Batch b;
      for (int j = i; j < std::min(n, i + chunk); ++j) b.add(tokens[static_cast<size_t>(j)], j, 0, true);
      Logits l = model->forward(b, cache);
      all.insert(all.end(), l.data.begin(), l.data.end());
    }
    write_npy(o->out, all, n, model->spec().n_vocab);
    return 0;
  };
}

}  // namespace volga::cli
