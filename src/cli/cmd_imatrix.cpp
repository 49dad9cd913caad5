// volga imatrix MODEL TEXT -o imatrix.gguf: collects an importance matrix
// (per input column of every weight matrix, the sum of the squared
// activations over a calibration text; per expert for MoE tensors), as
// llama-imatrix does: the text is cut into chunks of --chunk-size tokens, each
// evaluated from an empty cache (with BOS when the model adds one). Written in
// llama.cpp's GGUF format (or its legacy .dat when OUT ends in .dat).
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/imatrix.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga::cli {

namespace {

struct ImatrixOptions {
  std::string model, text, out;
  int chunk_size = 512;
  int chunks = 0;
  int threads = 0;
  bool quiet = false;
};

int run_imatrix(const ImatrixOptions& o) {
  auto file = GgufFile::open(o.model);
  auto tok = Tokenizer::from_gguf(*file);
  ThreadPool pool(resolve_threads(o.threads));
  auto model = load_model(*file, pool);
  const std::vector<int32_t> tokens = tok->encode(read_text_file(o.text), false, false);
  const bool bos = tok->add_bos() && tok->bos_id() >= 0;
  const int64_t n_ctx_train = model->spec().n_ctx_train;
  if (o.chunk_size > n_ctx_train)
    throw Error("--chunk-size " + std::to_string(o.chunk_size) + " exceeds the model's context of " +
                std::to_string(n_ctx_train) + " tokens");
  const int per_chunk = bos ? o.chunk_size - 1 : o.chunk_size;
  if (per_chunk < 1) throw Error("--chunk-size must leave room for at least one text token");
  int n_chunks = static_cast<int>(static_cast<int64_t>(tokens.size()) / per_chunk);
  if (n_chunks == 0)
    throw Error("'" + o.text + "' has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
                std::to_string(per_chunk) + "; give more text or a smaller --chunk-size");
  if (o.chunks > 0) n_chunks = std::min(n_chunks, o.chunks);
  const bool bar = !o.quiet && isatty(STDERR_FILENO);
  if (!o.quiet)
    std::fprintf(stderr, "volga imatrix: %zu tokens, %d chunks of %d\n", tokens.size(), n_chunks, o.chunk_size);
  KvCache cache(model->spec(), 1, o.chunk_size + 1);
  ImatrixCollector collector(*file);
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < n_chunks; ++c) {
    cache.truncate(0, 0);
    Batch b;
    int pos = 0;
    if (bos) b.add(tok->bos_id(), pos++, 0, false);
    for (int i = 0; i < per_chunk; ++i)
      b.add(tokens[static_cast<size_t>(c) * per_chunk + i], pos++, 0, i + 1 == per_chunk);
    model->forward(b, cache);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (bar) {
      const int width = 30, filled = (c + 1) * width / n_chunks;
      std::string s(static_cast<size_t>(filled), '=');
      if (filled < width) s += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
      std::fprintf(stderr, "\r[%s] %d/%d chunks  %.0fs left ", s.c_str(), c + 1, n_chunks,
                   elapsed / (c + 1) * (n_chunks - c - 1));
    } else if (!o.quiet) {
      std::fprintf(stderr, "  chunk %d/%d, %.1f s\n", c + 1, n_chunks, elapsed);
    }
  }
  if (bar) std::fputc('\n', stderr);
  Imatrix& m = collector.result();
  if (m.entries.empty())
    throw Error("no weight matrix was observed: this model's weights are not views of the file (converted at load?)");
  m.chunk_count = n_chunks;
  m.chunk_size = o.chunk_size;
  const size_t slash = o.text.find_last_of('/');
  m.datasets = {slash == std::string::npos ? o.text : o.text.substr(slash + 1)};
  const bool dat = o.out.size() > 4 && o.out.compare(o.out.size() - 4, 4, ".dat") == 0;
  if (dat) write_imatrix_dat(m, o.out);
  else write_imatrix_gguf(m, o.out);
  if (!o.quiet) {
    std::fprintf(stderr, "wrote %s (%s): %zu matrices, %d chunks of %d tokens\n", o.out.c_str(),
                 dat ? "legacy .dat" : "GGUF", m.entries.size(), n_chunks, o.chunk_size);
    if (collector.unmatched() > 0)
      std::fprintf(stderr, "volga: warning: %lld products used weights that are not tensors of the file\n",
                   static_cast<long long>(collector.unmatched()));
  }
  return 0;
}

}  // namespace

Command add_imatrix(CLI::App& app) {
  auto o = std::make_shared<ImatrixOptions>();
  CLI::App* cmd = app.add_subcommand(
      "imatrix",
      "Collect an importance matrix (squared activations per input column of every weight matrix) over a text, "
      "in llama.cpp's imatrix format, for low-bit quantization");
  cmd->add_option("model", o->model, "GGUF model file (best the F16/BF16 one you will quantize)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("text", o->text, "UTF-8 calibration text")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", o->out, "Output file: GGUF (llama.cpp's current format) or, ending in .dat, the legacy one")
      ->required();
  cmd->add_option("--chunk-size", o->chunk_size, "Tokens per chunk, each evaluated from an empty cache")
      ->default_val(512)
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--chunks", o->chunks, "Stop after this many chunks (0 = the whole text)")->check(CLI::NonNegativeNumber);
  add_threads_option(cmd, o->threads);
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  return [o]() { return run_imatrix(*o); };
}

}  // namespace volga::cli
