// ChatTemplate — turns an OpenAI-style conversation into the prompt text a
// model was trained on, by rendering the model's own Jinja chat template the
// way Hugging Face transformers does (apply_chat_template): variables
// `messages`, `tools`, `add_generation_prompt`, `bos_token`, `eos_token`, plus
// any extra variables (e.g. `enable_thinking`).
//
// Immutable after construction; render() may be called from many threads.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "chat/jinja.h"

namespace volga {

class Tokenizer;

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;          // null: no tools
  nlohmann::ordered_json extra_vars = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Throws jinja::TemplateError (with line and column) when `source` does not parse.
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token);

  // The template for a model: the file given by `override_file` if not empty,
  // else the vocabulary's own template, else ChatML (said on stderr once by
  // the caller via uses_fallback()).
  static ChatTemplate for_tokenizer(const Tokenizer& tok, const std::string& override_file = "");

  // Throws jinja::TemplateError when rendering fails or the template raises,
  // volga::Error when `messages` is not a list of objects.
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& opts = {}) const;

  const std::string& source() const { return source_; }
  bool uses_fallback() const { return fallback_; }

  // ChatML, the format used when a model ships no template.
  static const char* chatml_source();

 private:
  std::string source_, bos_, eos_;
  jinja::Template template_;
  bool fallback_ = false;
};

// Reads a whole text file; throws volga::Error naming the file.
std::string read_text_file(const std::string& path);

}  // namespace volga
