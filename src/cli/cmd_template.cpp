// volga template TEMPLATE_OR_MODEL --messages FILE: renders a chat template
// exactly as the engine will feed it to the model, to debug templates.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace volga::cli {

namespace {
struct TemplateOptions {
  std::string source;
  std::string messages_file;
  std::string tools_file;
  bool add_generation_prompt = false;
  std::vector<std::string> vars;
  std::string bos_token, eos_token;
  bool show_tokens = false;
};

nlohmann::ordered_json read_json_file(const std::string& path, const char* what) {
  std::string text;
  if (path == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  else text = read_text_file(path);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string(what) + " file '" + path + "' is not valid JSON: " + e.what());
  }
}

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}
}  // namespace

nlohmann::ordered_json parse_var_assignments(const std::vector<std::string>& vars) {
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  for (const std::string& kv : vars) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--var expects KEY=JSON, got '" + kv + "'");
    std::string value = kv.substr(eq + 1);
    try {
      extra[kv.substr(0, eq)] = nlohmann::ordered_json::parse(value);
    } catch (const nlohmann::json::parse_error&) {
      throw Error("--var " + kv.substr(0, eq) + ": '" + value +
                  "' is not JSON (strings need quotes: --var 'name=\"text\"')");
    }
  }
  return extra;
}

Command add_template(CLI::App& app) {
  auto o = std::make_shared<TemplateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "template", "Render a chat template (a .jinja file or a model's own) for a conversation, byte for byte");
  cmd->add_option("template", o->source, "Template file (Jinja2) or GGUF model whose template to use")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--messages", o->messages_file,
                  "JSON file with the conversation: [{\"role\": ..., \"content\": ...}, ...] or {\"messages\": [...]} ('-' = stdin)")
      ->required();
  cmd->add_option("--tools", o->tools_file, "JSON file with tool definitions (OpenAI format)");
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn's opening");
  cmd->add_option("--var", o->vars, "Extra template variable KEY=JSON, e.g. --var enable_thinking=false (repeatable)");
  cmd->add_option("--bos-token", o->bos_token, "bos_token for a template file (a model supplies its own)");
  cmd->add_option("--eos-token", o->eos_token, "eos_token for a template file (a model supplies its own)");
  cmd->add_flag("--tokens", o->show_tokens, "With a model: print the token count to stderr as well");
  return [o]() -> int {
    nlohmann::ordered_json messages = read_json_file(o->messages_file, "messages");
    nlohmann::ordered_json tools;
    if (messages.is_object() && messages.contains("messages")) {
      if (messages.contains("tools")) tools = messages["tools"];
      messages = nlohmann::ordered_json(messages["messages"]);
    }
    if (!o->tools_file.empty()) tools = read_json_file(o->tools_file, "tools");
    ChatRenderOptions opts;
    opts.add_generation_prompt = o->add_generation_prompt;
    opts.tools = tools;
    opts.extra_vars = parse_var_assignments(o->vars);
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<ChatTemplate> tmpl;
    if (is_gguf(o->source)) {
      auto file = GgufFile::open(o->source);
      tok = Tokenizer::from_gguf(*file);
      tmpl = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*tok));
      if (tmpl->uses_fallback()) std::fprintf(stderr, "volga: the model has no chat template; using ChatML\n");
    } else {
      tmpl = std::make_unique<ChatTemplate>(read_text_file(o->source), o->bos_token, o->eos_token);
    }
    std::string prompt = tmpl->render(messages, opts);
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    if (tok && o->show_tokens)
      std::fprintf(stderr, "volga: %zu tokens\n", tok->encode(prompt, false, true).size());
    return 0;
  };
}

}  // namespace volga::cli
