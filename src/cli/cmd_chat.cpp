// volga chat MODEL: an interactive multi-turn conversation in the terminal,
// formatted with the model's own chat template. Between turns only the new
// part of the prompt is computed: the KV cache keeps the common prefix.
// When the conversation outgrows the context, the oldest turns after the
// system message are dropped (with a notice) so that the chat goes on.
// Lines are edited with libedit (history, arrow keys); slash commands manage
// the conversation; Ctrl-C stops a reply and keeps the conversation.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/line_reader.h"
#include "format/gguf.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
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
  std::string history_file;
  bool no_history = false;
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

const char* kChatHelp =
    "Commands:\n"
    "  /help           this list\n"
    "  /reset          clear the conversation (asks first; keeps the system message)\n"
    "  /system TEXT    set the system message; /system alone shows it\n"
    "  /save FILE      write the conversation as JSON\n"
    "  /load FILE      read a conversation written by /save (or a JSON list of messages)\n"
    "  /exit, /quit    leave (so do Ctrl-D, and Ctrl-C twice at an empty prompt)\n"
    "Start a message with // to send text that begins with /.\n"
    "Multi-line messages: end a line with \\ to continue it, or put the text between lines of \"\"\"\n"
    "Ctrl-C during a reply stops it and keeps the conversation.\n";

// A conversation read by /load: a list of messages or {"messages": [...]};
// each message an object with a role and string content (assistant messages
// may carry tool_calls instead). Throws volga::Error saying what is wrong.
Messages parse_conversation(const std::string& path) {
  Messages doc;
  try {
    doc = Messages::parse(read_text_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + " is not valid JSON: " + e.what());
  }
  if (doc.is_object() && doc.contains("messages")) doc = doc["messages"];
  if (!doc.is_array()) throw Error(path + ": expected a list of messages or an object with \"messages\"");
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& m = doc[i];
    const std::string where = path + ": message " + std::to_string(i + 1);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw Error(where + " has no \"role\"");
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw Error(where + " has role \"" + role + "\" (system, user, assistant or tool)");
    const bool content_ok = m.contains("content") && m["content"].is_string();
    if (!content_ok && !(role == "assistant" && m.contains("tool_calls")))
      throw Error(where + " has no string \"content\"");
  }
  return doc;
}

std::string default_history_file() {
  const char* home = std::getenv("HOME");
  return home && *home ? std::string(home) + "/.volga_history" : std::string();
}
}  // namespace

Command add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat",
      "Chat with a model in the terminal, formatted with its own chat template. Line editing and history; "
      "/help lists the commands; Ctrl-C stops a reply; Ctrl-D or /exit quits");
  cmd->add_option("model", o->model, kModelHelp)->check(CLI::ExistingFile);
  cmd->add_option("--system", o->system, "System message that opens the conversation");
  cmd->add_option("--chat-template-file", o->template_file, "Use this Jinja2 template instead of the model's")
      ->check(CLI::ExistingFile);
  cmd->add_option("--var", o->vars, "Extra template variable KEY=JSON, e.g. --var enable_thinking=false");
  cmd->add_option("-n,--n-predict", o->n_predict, "Maximum tokens per reply")->default_val(1024)->check(CLI::Range(1, 1 << 20));
  add_ctx_size_option(cmd, o->ctx_size, "Context size in tokens (capped at the model's)")
      ->default_val(4096)
      ->check(CLI::Range(16, 1 << 24));
  add_threads_option(cmd, o->threads);
  cmd->add_option("--history-file", o->history_file,
                  "Where typed lines are remembered between sessions (default: ~/.volga_history)");
  cmd->add_flag("--no-history-file", o->no_history, "Keep the line history for this session only")
      ->excludes("--history-file");
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
    const bool tty_in = isatty(STDIN_FILENO);
    InterruptGuard interrupts;
    LineReader reader("volga", o->no_history ? std::string() : o->history_file.empty() ? default_history_file()
                                                                                         : o->history_file);
    const bool interactive = reader.interactive();
    std::string system = o->system;
    Messages messages = Messages::array();
    auto reset = [&] {
      messages = Messages::array();
      if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    };
    reset();
    std::vector<int32_t> cached;  // tokens whose keys/values are in the cache
    if (tty_in)
      std::fprintf(stderr, "volga chat: %s, context %d tokens. /help lists the commands, /exit quits.\n",
                   o->model.c_str(), ctx);
    auto note = [](const std::string& text) { std::fprintf(stderr, "volga: %s\n", text.c_str()); };

    // One message from the user: a line, a line continued with a trailing
    // backslash, or a block between lines of """. nullopt at end of input;
    // an interruption returns Status::Interrupted.
    bool interrupted_at_prompt = false;
    auto read_message = [&](std::string& text) -> LineReader::Status {
      LineReader::Result r = reader.read(tty_in ? "> " : "");
      if (r.status != LineReader::Status::Line) return r.status;
      text = r.text;
      if (text == "\"\"\"") {
        text.clear();
        while (true) {
          r = reader.read(tty_in ? "... " : "");
          if (r.status == LineReader::Status::Interrupted) return r.status;
          if (r.status == LineReader::Status::End || r.text == "\"\"\"") break;
          if (!text.empty()) text += '\n';
          text += r.text;
        }
      } else {
        while (!text.empty() && text.back() == '\\') {
          text.pop_back();
          r = reader.read(tty_in ? "... " : "");
          if (r.status == LineReader::Status::Interrupted) return r.status;
          if (r.status == LineReader::Status::End) break;
          text += '\n';
          text += r.text;
        }
      }
      return LineReader::Status::Line;
    };

    // Slash commands; false when the chat should end.
    auto command = [&](const std::string& line) -> bool {
      const size_t sp = line.find(' ');
      const std::string name = line.substr(0, sp);
      std::string arg = sp == std::string::npos ? std::string() : line.substr(sp + 1);
      while (!arg.empty() && arg.front() == ' ') arg.erase(arg.begin());
      while (!arg.empty() && arg.back() == ' ') arg.pop_back();
      if (name == "/exit" || name == "/quit") return false;
      if (name == "/help") {
        std::fputs(kChatHelp, stdout);
        std::fflush(stdout);
      } else if (name == "/reset") {
        bool yes = true;
        if (interactive) {
          LineReader::Result r = reader.read("Clear the conversation? [y/N] ");
          yes = r.status == LineReader::Status::Line && (r.text == "y" || r.text == "Y" || r.text == "yes");
        }
        if (yes) {
          reset();
          note("conversation cleared" + std::string(system.empty() ? "" : " (the system message stays)"));
        } else {
          note("kept the conversation");
        }
      } else if (name == "/system") {
        if (arg.empty()) {
          note(system.empty() ? "no system message" : "system message: " + system);
        } else {
          system = sanitize_utf8(arg);
          if (!messages.empty() && messages[0]["role"] == "system")
            messages[0]["content"] = system;
          else
            messages.insert(messages.begin(), Messages{{"role", "system"}, {"content", system}});
          note("system message set");
        }
      } else if (name == "/save") {
        if (arg.empty()) {
          note("/save needs a file name, e.g. /save chat.json");
          return true;
        }
        std::ofstream out(arg, std::ios::binary);
        out << Messages{{"messages", messages}}.dump(2) << '\n';
        out.close();
        if (!out)
          note("could not write " + arg + ": " + std::strerror(errno));
        else
          note("saved " + std::to_string(messages.size()) + " messages to " + arg);
      } else if (name == "/load") {
        if (arg.empty()) {
          note("/load needs a file name, e.g. /load chat.json");
          return true;
        }
        try {
          messages = parse_conversation(arg);
          system = !messages.empty() && messages[0]["role"] == "system" && messages[0]["content"].is_string()
                       ? messages[0]["content"].get<std::string>()
                       : std::string();
          note("loaded " + std::to_string(messages.size()) + " messages from " + arg);
        } catch (const Error& e) {
          note(std::string(e.what()) + "; the conversation is unchanged");
        }
      } else {
        note("unknown command " + name + "; /help lists the commands (start with // to send text beginning with /)");
      }
      return true;
    };

    std::string text;
    while (true) {
      const LineReader::Status st = read_message(text);
      if (st == LineReader::Status::End) {
        if (interactive) std::fputc('\n', stdout);
        break;
      }
      if (st == LineReader::Status::Interrupted) {
        InterruptGuard::clear();
        if (interrupted_at_prompt) break;
        interrupted_at_prompt = true;
        note("press Ctrl-C again (or type /exit) to quit");
        continue;
      }
      interrupted_at_prompt = false;
      if (text.empty()) continue;
      reader.remember(text);
      if (text[0] == '/' && text.rfind("//", 0) != 0) {
        if (!command(text)) break;
        continue;
      }
      if (text.rfind("//", 0) == 0) text.erase(0, 1);
      messages.push_back({{"role", "user"}, {"content", sanitize_utf8(text)}});
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
      using Clock = std::chrono::steady_clock;
      const Clock::time_point t0 = Clock::now();
      std::optional<Clock::time_point> t_first;
      InterruptGuard::clear();
      GenerateResult res = generate(*model, cache, prompt, gopt, [&](int32_t id) {
        if (!t_first) t_first = Clock::now();
        if (!tok->is_end_of_generation(id)) {
          std::string piece = dec.push(id);
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return !InterruptGuard::pending();
      });
      const Clock::time_point t_end = Clock::now();
      const bool stopped_by_user = InterruptGuard::pending();
      InterruptGuard::clear();
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
      if (stopped_by_user) note("reply stopped; the conversation keeps what was said");
      if (tty_in && t_first) {
        const double prefill_s = std::chrono::duration<double>(*t_first - t0).count();
        const double decode_s = std::chrono::duration<double>(t_end - *t_first).count();
        const size_t fresh = prompt.size() - common;
        std::fprintf(stderr, "[%zu tokens, %.1f tok/s | prompt: %zu new tokens, %.0f tok/s | context %zu/%d]\n",
                     res.ids.size(), res.ids.size() > 1 && decode_s > 0 ? (res.ids.size() - 1) / decode_s : 0.0,
                     fresh, prefill_s > 0 ? fresh / prefill_s : 0.0, cached.size(), ctx);
      }
    }
    return 0;
  };
}

}  // namespace volga::cli
