// volga run MODEL -p TEXT: completes TEXT as plain text (no chat template).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "sampling/json_schema.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga::cli {

void add_sampling_options(CLI::App* cmd, SamplingParams& p, int64_t& seed) {
  cmd->add_option("--temperature,--temp", p.temperature, "Sampling temperature; 0 = greedy")->default_val(0.8f);
  cmd->add_option("--top-k", p.top_k, "Keep the K most likely tokens (0 = off)")->default_val(40)->check(CLI::Validator(
      [](std::string& v) { return v.rfind('-', 0) == 0 ? "must be 0 (off) or a positive number of tokens, not " + v : std::string(); },
      "K", "top-k"));
  cmd->add_option("--top-p", p.top_p, "Nucleus sampling threshold (1 = off)")->default_val(0.95f);
  cmd->add_option("--min-p", p.min_p, "Drop tokens below min-p times the top probability (0 = off)")->default_val(0.05f);
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "Penalty for recently seen tokens (1 = off)")->default_val(1.0f);
  cmd->add_option("--repeat-last-n", p.repeat_last_n, "How many recent tokens the repeat penalty considers")->default_val(64)->check(CLI::Validator(
      [](std::string& v) { return v.rfind('-', 0) == 0 ? "must be 0 or more tokens, not " + v : std::string(); },
      "N", "repeat-last-n"));
  cmd->add_option("-s,--seed", seed, "Random seed for reproducible sampling (default: random)");
}

void finish_sampling_options(SamplingParams& p, int64_t seed) {
  p.seed = seed >= 0 ? static_cast<uint64_t>(seed)
                     : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  p.validate();
}

namespace {
struct RunOptions {
  std::string model;
  std::string prompt, prompt_file;
  int n_predict = 128;
  int threads = 0;
  int ctx_size = 0;
  KvFlags kv;
  bool json = false;
  bool ignore_eos = false;
  bool special = false;
  SamplingParams sampling;
  int64_t seed = -1;
  std::string grammar_file, schema_file;
  MpiFlags mpi;
};
}  // namespace

void add_grammar_options(CLI::App* cmd, std::string& grammar_file, std::string& schema_file) {
  cmd->add_option("--grammar", grammar_file,
                  "Constrain the output to a GBNF grammar read from FILE (llama.cpp's notation; start rule 'root')")
      ->check(CLI::ExistingFile);
  cmd->add_option("--json-schema", schema_file,
                  "Constrain the output to JSON valid against the JSON Schema in FILE (see docs/STRUCTURED_OUTPUT.md)")
      ->check(CLI::ExistingFile)
      ->excludes("--grammar");
}

std::shared_ptr<const Grammar> load_grammar_option(const std::string& grammar_file, const std::string& schema_file) {
  if (!grammar_file.empty()) return Grammar::parse(read_text_file(grammar_file));
  if (schema_file.empty()) return nullptr;
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(read_text_file(schema_file));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(schema_file + " is not valid JSON: " + e.what());
  }
  try {
    return Grammar::parse(json_schema_to_gbnf(schema));
  } catch (const SchemaError& e) {
    throw Error(schema_file + ": " + e.what());
  }
}

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Complete a prompt as plain text (no chat template) and print the generated text");
  cmd->add_option("model", o->model, kModelHelp)->check(CLI::ExistingFile);
  CLI::Option* prompt_opt = cmd->add_option("-p,--prompt", o->prompt, "Text to complete ('-' reads it from standard input)");
  cmd->add_option("-f,--file", o->prompt_file, "Read the text to complete from FILE")
      ->check(CLI::ExistingFile)
      ->excludes(prompt_opt);
  cmd->add_option("-n,--n-predict", o->n_predict, "Maximum number of tokens to generate")->default_val(128)->check(CLI::Range(0, 1 << 20));
  add_sampling_options(cmd, o->sampling, o->seed);
  add_kv_options(cmd, o->kv, false);
  add_threads_option(cmd, o->threads);
  add_ctx_size_option(cmd, o->ctx_size, "Context size in tokens (default: prompt + n-predict, capped at the model's)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-generation tokens");
  cmd->add_flag("--special", o->special, "Recognise control-token texts such as <|im_start|> in the prompt (e.g. a prompt made by 'volga template')");
  cmd->add_flag("--json", o->json, "Print one JSON object with prompt_ids, ids and text instead of the text");
  add_grammar_options(cmd, o->grammar_file, o->schema_file);
  add_mpi_options(cmd, o->mpi);
  return [o]() -> int {
    MpiLaunch mpi(o->mpi);
    if (mpi.is_worker()) return run_pipeline_stage(mpi, o->model, o->threads);
    finish_sampling_options(o->sampling, o->seed);
    if (!o->prompt_file.empty()) {
      o->prompt = read_text_file(o->prompt_file);
    } else if (o->prompt == "-") {
      o->prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else if (o->prompt.empty()) {
      throw Error("no prompt: give the text with -p TEXT, -p - (standard input) or -f FILE");
    }
    o->model = resolve_model(o->model);
    auto file = GgufFile::open(o->model);
    auto tok = Tokenizer::from_gguf(*file);
    o->sampling.grammar = load_grammar_option(o->grammar_file, o->schema_file);
    if (o->sampling.grammar) o->sampling.vocab = std::make_shared<TokenTrie>(*tok);
    const bool special_text = o->sampling.grammar != nullptr;  // the grammar matched control tokens as text
    ThreadPool pool(resolve_threads(o->threads));
    auto model = mpi.load(*file, pool);
    std::vector<int32_t> prompt = tok->encode(o->prompt, true, o->special);
    if (prompt.empty()) throw Error("the prompt is empty: give some text with -p or -f");
    const int64_t n_prompt = static_cast<int64_t>(prompt.size());
    const int64_t ctx = o->ctx_size > 0 ? o->ctx_size
                                        : std::min<int64_t>(n_prompt + o->n_predict, model->spec().n_ctx_train);
    if (n_prompt > ctx)
      throw Error("the prompt has " + std::to_string(n_prompt) + " tokens, more than the context of " +
                  std::to_string(ctx) + " tokens; shorten the prompt or raise --ctx-size");
    KvCacheOptions ko;
    ko.n_ctx = static_cast<int>(ctx);
    std::tie(ko.type_k, ko.type_v) = kv_types(o->kv);
    KvCache cache(model->spec(), ko);
    GenerateOptions gopt;
    gopt.max_tokens = o->n_predict;
    gopt.sampling = o->sampling;
    if (!o->ignore_eos)
      for (int32_t id = 0; id < tok->n_vocab(); ++id)
        if (tok->is_end_of_generation(id)) gopt.stop_ids.push_back(id);
    StreamDecoder dec(*tok, special_text);
    const bool stream = !o->json;
    GenerateResult res = generate(*model, cache, prompt, gopt, [&](int32_t id) {
      if (stream && !tok->is_end_of_generation(id)) {
        std::string piece = dec.push(id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    });
    std::vector<int32_t> out_ids = res.ids;
    if (res.stopped && !out_ids.empty() && tok->is_end_of_generation(out_ids.back()))
      out_ids.pop_back();  // the stop token is not text
    if (o->json) {
      nlohmann::json j;
      j["prompt_ids"] = prompt;
      j["ids"] = res.ids;
      j["text"] = sanitize_utf8(tok->decode(out_ids, special_text));
      j["stopped"] = res.stopped;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::string rest = dec.flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      if (isatty(STDOUT_FILENO)) std::fputc('\n', stdout);
    }
    return 0;
  };
}

}  // namespace volga::cli
