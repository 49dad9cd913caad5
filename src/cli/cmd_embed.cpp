// volga embed MODEL TEXT...: embedding vectors (or, with --rerank QUERY,
// relevance scores of the texts for the query; a reranker without --rerank
// scores each input as a whole pair) from an embedding or reranking model,
// printed as text or JSON.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "model/model.h"
#include "runtime/embed.h"
#include "runtime/rerank.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace volga::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoi(item, &used));
      if (used != item.size()) throw Error("");
    } catch (const std::exception&) {
      throw Error("--ids: '" + item + "' is not a token id");
    }
  }
  return ids;
}

void print_vector(const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) std::printf(i ? " %.9g" : "%.9g", static_cast<double>(v[i]));
  std::printf("\n");
}

}  // namespace

Command add_embed(CLI::App& app) {
  struct Opt {
    std::string model, pooling, rerank_query;
    std::vector<std::string> texts, ids;
    bool json = false, no_normalize = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand(
      "embed", "Embedding vectors of texts (one line or JSON array each); with --rerank QUERY, relevance scores");
  cmd->add_option("model", o->model, "GGUF embedding or reranking model")->required()->check(CLI::ExistingFile);
  cmd->add_option("texts", o->texts, "Texts to embed (or documents to score with --rerank)");
  cmd->add_option("--ids", o->ids, "An input as comma-separated token ids instead of text (repeatable)");
  cmd->add_option("--pooling", o->pooling, "none, mean, cls or last (default: the model's pooling_type; cls for encoders, last for decoders without one)");
  cmd->add_flag("--no-normalize", o->no_normalize, "Print the pooled vectors as they are, not L2-normalised");
  cmd->add_option("--rerank", o->rerank_query, "Score the texts as documents for this query (a cross-encoder, or a decoder as a Qwen3-Reranker-style yes/no reranker)");
  cmd->add_flag("--json", o->json, "Print JSON: model, pooling, tokens and embeddings (or scores)");
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all hardware threads)");
  return [o]() -> int {
    auto file = GgufFile::open(o->model);
    auto tok = Tokenizer::from_gguf(*file);
    ThreadPool pool(resolve_threads(o->threads));
    auto model = load_model(*file, pool);
    const bool pair = !o->rerank_query.empty();
    // A reranker scores its inputs: (query, text) pairs, or texts and ids taken as whole pairs.
    const bool rerank = pair || model->spec().pooling == Pooling::Rank;
    // --rerank on a decoder: a Qwen3-Reranker-style yes/no reranker.
    const RerankFormat format = rerank ? rerank_format(model->spec(), *tok, pair) : RerankFormat{};
    std::vector<std::vector<int32_t>> inputs;
    for (const std::string& t : o->texts)
      inputs.push_back(pair ? rerank_input(*tok, format, o->rerank_query, t) : tok->encode(t, true, false));
    for (const std::string& s : o->ids) inputs.push_back(parse_ids(s));
    if (inputs.empty()) throw Error("nothing to embed: give texts or --ids");
    nlohmann::json out;
    out["model"] = o->model;
    out["tokens"] = inputs;
    if (rerank) {
      if (format.kind == RerankFormat::Kind::None)
        throw Error("this model is not a reranker (no classification head with pooling rank, not a decoder)");
      const std::vector<float> scores = rerank_inputs(*model, format, inputs);
      if (o->json) {
        out["scores"] = scores;
        std::printf("%s\n", out.dump().c_str());
      } else {
        for (size_t i = 0; i < scores.size(); ++i)
          std::printf("%.9g\t%s\n", static_cast<double>(scores[i]), i < o->texts.size() ? o->texts[i].c_str() : "");
      }
      return 0;
    }
    EmbedOptions eo;
    eo.pooling = o->pooling.empty() ? Pooling::Unspecified : parse_pooling(o->pooling);
    eo.normalize = !o->no_normalize;
    const Pooling pooling = embedding_pooling(model->spec(), eo.pooling);
    const auto vectors = embed_inputs(*model, inputs, eo);
    if (o->json) {
      out["pooling"] = pooling_name(pooling);
      out["normalized"] = eo.normalize;
      out["embeddings"] = vectors;
      std::printf("%s\n", out.dump().c_str());
    } else {
      for (const auto& v : vectors) print_vector(v);
    }
    return 0;
  };
}

}  // namespace volga::cli
