#include "chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace volga {

const char* ChatTemplate::chatml_source() {
  return "{%- for message in messages %}"
         "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
         "{%- endfor %}"
         "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
}

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : source_(std::move(source)), bos_(std::move(bos_token)), eos_(std::move(eos_token)),
      template_(jinja::Template::parse(source_)) {}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read '" + path + "'");
  return ss.str();
}

ChatTemplate ChatTemplate::for_tokenizer(const Tokenizer& tok, const std::string& override_file) {
  auto text = [&](int32_t id) { return id >= 0 && id < tok.n_vocab() ? tok.piece(id) : std::string(); };
  std::string source = !override_file.empty() ? read_text_file(override_file) : tok.chat_template();
  bool fallback = source.empty();
  if (fallback) source = chatml_source();
  ChatTemplate t(source, text(tok.bos_id()), text(tok.eos_id()));
  t.fallback_ = fallback;
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts) const {
  if (!messages.is_array()) throw Error("messages must be a JSON array of {\"role\", \"content\"} objects");
  for (auto& m : messages)
    if (!m.is_object()) throw Error("each message must be a JSON object with \"role\" and \"content\"");
  jinja::Dict vars;
  vars.set("messages", jinja::from_json(messages));
  vars.set("tools", opts.tools.is_null() ? jinja::Value::none() : jinja::from_json(opts.tools));
  vars.set("documents", jinja::Value::none());
  vars.set("add_generation_prompt", jinja::Value::boolean(opts.add_generation_prompt));
  vars.set("bos_token", jinja::Value::string(bos_));
  vars.set("eos_token", jinja::Value::string(eos_));
  if (opts.extra_vars.is_object())
    for (auto& [k, v] : opts.extra_vars.items()) vars.set(k, jinja::from_json(v));
  return template_.render(vars);
}

}  // namespace volga
