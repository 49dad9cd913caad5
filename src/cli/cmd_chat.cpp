// volga chat MODEL: an interactive multi-turn conversation in the terminal,
// formatted with the model's own chat template. Between turns only the new
// part of the prompt is computed: the KV cache keeps the common prefix.
// When the conversation outgrows the context, the oldest turns after the
// system message are dropped (with a notice) so that the chat goes on.
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <iostream>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace volga::cli {

namespace {
struct ChatOptions {
  std::string model;
  std::string system;
  std::string template_file;
  std::vector<std::string> vars;
  int n_predict = 1024;
  int threads = 0;
  int ctx_size = 4096;
  KvFlags kv;
  SamplingParams sampling;
  int64_t seed = -1;
};

using Messages = nlohmann::ordered_json;
using Encoder = std::function<std::vector<int32_t>(const Messages&)>;

// Drops whole turns (a user message and the replies after it), oldest first
// and never the system message nor the newest message, until the prompt
// leaves `reserve` tokens of the context for the reply. Returns the prompt
// of what is left and the number of messages dropped.
std::pair<std::vector<int32_t>, int> fit_context(Messages& messages, const Encoder& encode, int ctx, int reserve) {
  std::vector<int32_t> prompt = encode(messages);
  const size_t first = !messages.empty() && messages[0]["role"] == "system" ? 1 : 0;
  int dropped = 0;
  while (static_cast<int64_t>(prompt.size()) + reserve > ctx && messages.size() > first + 1) {
    do {
      messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first));
      ++dropped;
    } while (messages.size() > first + 1 && messages[first]["role"] != "user");
    prompt = encode(messages);
  }
  return {std::move(prompt), dropped};
}
}  // namespace

Command add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat with a model in the terminal (its own chat template; /reset starts over, /exit or Ctrl-D quits)");
  cmd->add_option("model", o->model, kModelHelp)->check(CLI::ExistingFile);
  cmd->add_option("--system", o->system, "System message that opens the conversation");
  cmd->add_option("--chat-template-file", o->template_file, "Use this Jinja2 template instead of the model's")
      ->check(CLI::ExistingFile);
  cmd->add_option("--var", o->vars, "Extra template variable KEY=JSON, e.g. --var enable_thinking=false");
  cmd->add_option("-n,--n-predict", o->n_predict, "Maximum tokens per reply")->default_val(1024)->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context size in tokens (capped at the model's)")->default_val(4096)->check(CLI::Range(16, 1 << 24));
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all hardware threads)");
  add_sampling_options(cmd, o->sampling, o->seed);
  add_kv_options(cmd, o->kv, false);
  return [o]() -> int {
    finish_sampling_options(o->sampling, o->seed);
    o->model = resolve_model(o->model);
    auto file = GgufFile::open(o->model);
    auto tok = Tokenizer::from_gguf(*file);
    ChatTemplate tmpl = ChatTemplate::for_tokenizer(*tok, o->template_file);
    if (tmpl.uses_fallback()) std::fprintf(stderr, "volga: the model has no chat template; using ChatML\n");
    ChatRenderOptions ropts;
    ropts.extra_vars = parse_var_assignments(o->vars);
    ThreadPool pool(resolve_threads(o->threads));
    auto model = load_model(*file, pool);
    const int ctx = static_cast<int>(std::min<int64_t>(o->ctx_size, model->spec().n_ctx_train));
    KvCacheOptions ko;
    ko.n_ctx = ctx;
    std::tie(ko.type_k, ko.type_v) = kv_types(o->kv);
    KvCache cache(model->spec(), ko);
    GenerateOptions gopt;
    gopt.sampling = o->sampling;
    for (int32_t id = 0; id < tok->n_vocab(); ++id)
      if (tok->is_end_of_generation(id)) gopt.stop_ids.push_back(id);
    const Encoder encode = [&](const Messages& m) {
      std::vector<int32_t> ids = tok->encode(tmpl.render(m, ropts), false, true);
      if (tok->add_bos() && (ids.empty() || ids[0] != tok->bos_id())) ids.insert(ids.begin(), tok->bos_id());
      return ids;
    };
    // Room kept for a reply when the conversation is trimmed to fit.
    const int reserve = std::max(1, std::min(o->n_predict, ctx / 4));
    const bool interactive = isatty(STDIN_FILENO);
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    auto reset = [&] {
      messages = nlohmann::ordered_json::array();
      if (!o->system.empty()) messages.push_back({{"role", "system"}, {"content", o->system}});
      cache.truncate(0, 0);
    };
    reset();
    std::vector<int32_t> cached;  // tokens whose keys/values are in the cache
    if (interactive)
      std::fprintf(stderr, "volga chat: %s, context %d tokens. /reset starts over, /exit quits.\n",
                   o->model.c_str(), ctx);
    std::string line;
    while (true) {
      if (interactive) {
        std::fputs("> ", stdout);
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        cached.clear();
        continue;
      }
      if (line.empty()) continue;
      messages.push_back({{"role", "user"}, {"content", sanitize_utf8(line)}});
      auto [prompt, dropped] = fit_context(messages, encode, ctx, reserve);
      if (dropped > 0)
        std::fprintf(stderr, "volga: context full: dropped %d oldest message%s\n", dropped, dropped == 1 ? "" : "s");
      if (static_cast<int>(prompt.size()) >= ctx) {
        std::fprintf(stderr, "volga: the message needs %zu tokens with the system prompt, more than the context of %d; "
                     "send a shorter one or raise --ctx-size\n", prompt.size(), ctx);
        messages.erase(messages.end() - 1);
        continue;
      }
      size_t common = 0;
      while (common < cached.size() && common < prompt.size() && cached[common] == prompt[common]) ++common;
      cache.truncate(0, static_cast<int>(common));
      gopt.max_tokens = std::min(o->n_predict, ctx - static_cast<int>(prompt.size()));
      StreamDecoder dec(*tok);
      GenerateResult res = generate(*model, cache, prompt, gopt, [&](int32_t id) {
        if (!tok->is_end_of_generation(id)) {
          std::string piece = dec.push(id);
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return true;
      });
      std::string rest = dec.flush();
      std::fwrite(rest.data(), 1, rest.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      std::vector<int32_t> reply = res.ids;
      if (res.stopped && !reply.empty()) reply.pop_back();
      messages.push_back({{"role", "assistant"}, {"content", sanitize_utf8(tok->decode(reply))}});
      cached = prompt;
      cached.insert(cached.end(), res.ids.begin(), res.ids.end());
      cached.resize(static_cast<size_t>(cache.length(0)));
    }
    return 0;
  };
}

}  // namespace volga::cli
