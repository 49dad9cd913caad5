#include "server/generation.h"

#include <algorithm>

#include "sampling/json_schema.h"
#include "util/utf8.h"

namespace volga::server {

namespace {

using Clock = std::chrono::steady_clock;

std::string render_chat(const ModelContext& m, const CompletionParams& p, bool tools_on) {
  Json messages;
  try {
    messages = normalize_messages(p.messages, m.format);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "messages");
  }
  ChatRenderOptions ro;
  ro.add_generation_prompt = true;
  if (tools_on) ro.tools = p.tools;  // tool_choice "none": the model is not told about them
  ro.extra_vars = p.template_kwargs;
  try {
    return m.tmpl->render(messages, ro);
  } catch (const Error& e) {
    throw ApiError(400, std::string("the chat template rejected these messages: ") + e.what(), "messages");
  }
}

// The grammar of a JSON Schema, after free reasoning text when the prompt
// left the model thinking (so the answer, not the thoughts, is the JSON).
std::string schema_grammar(const ModelContext& m, const Json& schema, bool in_reasoning) {
  SchemaConverter conv;
  std::string value = conv.add_schema(schema, "response");
  if (!in_reasoning) return conv.grammar(value);
  std::string rules;
  std::string think = gbnf_text_until(m.format.think_close, "reasoning", rules);
  std::string ws = conv.add_rule("reasoning-ws", "[ \\n]{0,2}");
  return conv.grammar(think + " " + ws + " " + value) + rules;
}

std::shared_ptr<const Grammar> compile(const std::string& gbnf, const std::string& param) {
  try {
    auto g = Grammar::parse(gbnf);
    GrammarMatcher probe(g);  // a grammar that matches nothing fails here, not in the engine
    return g;
  } catch (const GrammarError& e) {
    throw ApiError(400, e.what(), param);
  }
}

std::shared_ptr<const Grammar> chat_grammar(const ModelContext& m, const CompletionParams& p, bool tools_on,
                                            bool in_reasoning) {
  const bool forced = tools_on && (p.tool_choice == "required" || p.tool_choice_named);
  if (forced) {
    if (m.format.tools == ToolCallStyle::None)
      throw ApiError(400, "this model's chat template has no tool-call format, so tool_choice '" + p.tool_choice +
                              "' cannot be honoured (give a template with --chat-template-file)", "tool_choice");
    if (!p.json_schema.is_null())
      throw ApiError(400, "response_format cannot be combined with a forced tool_choice", "response_format");
    try {
      return compile(tool_call_grammar(m.format, p.tools, p.tool_choice_named ? p.tool_choice : "",
                                       p.parallel_tool_calls, in_reasoning), "tools");
    } catch (const SchemaError& e) {
      throw ApiError(400, std::string("a tool's parameters: ") + e.what(), "tools");
    }
  }
  if (p.json_schema.is_null()) return nullptr;
  if (tools_on)
    throw ApiError(400, "response_format together with tools is supported with tool_choice \"none\" or \"required\", not \"auto\"",
                   "response_format");
  try {
    return compile(schema_grammar(m, p.json_schema, in_reasoning), "response_format");
  } catch (const SchemaError& e) {
    throw ApiError(400, e.what(), "response_format");
  }
}

std::shared_ptr<const Grammar> completion_grammar(const CompletionParams& p) {
  if (!p.grammar.empty()) return compile(p.grammar, "grammar");
  if (p.json_schema.is_null()) return nullptr;
  try {
    return compile(json_schema_to_gbnf(p.json_schema), "json_schema");
  } catch (const SchemaError& e) {
    throw ApiError(400, e.what(), "json_schema");
  }
}

void check_context(const ModelContext& m, const CompletionParams& p, int64_t n_prompt, int64_t max_tokens) {
  const char* what = p.chat ? "messages" : "prompt";
  if (n_prompt >= m.ctx)
    throw ApiError(400, "This model's maximum context length is " + std::to_string(m.ctx) + " tokens. However, your " +
                            what + " resulted in " + std::to_string(n_prompt) + " tokens. Please reduce the length of the " +
                            what + "." + m.ctx_note, what, "invalid_request_error", "context_length_exceeded");
  if (n_prompt + max_tokens > m.ctx)
    throw ApiError(400, "This model's maximum context length is " + std::to_string(m.ctx) + " tokens. However, you requested " +
                            std::to_string(n_prompt + max_tokens) + " tokens (" + std::to_string(n_prompt) + " in the " +
                            what + ", " + std::to_string(max_tokens) +
                            " in the completion). Please reduce the length of the messages or completion." + m.ctx_note,
                   "max_tokens", "invalid_request_error", "context_length_exceeded");
}

}  // namespace

PreparedRequest prepare(const ModelContext& m, const CompletionParams& p) {
  PreparedRequest r;
  std::vector<int32_t> ids;
  std::shared_ptr<const Grammar> grammar;
  if (p.chat) {
    const bool tools_on = p.tools.is_array() && !p.tools.empty() && p.tool_choice != "none";
    std::string text = render_chat(m, p, tools_on);
    r.in_reasoning = m.format.reasoning && prompt_opens_reasoning(m.format, text);
    r.parse_tools = tools_on && m.format.tools != ToolCallStyle::None;
    grammar = chat_grammar(m, p, tools_on, r.in_reasoning);
    r.render_special = true;  // tool-call markers may be control tokens
    ids = m.tok->encode(text, false, true);
    if (m.tok->add_bos() && (ids.empty() || ids[0] != m.tok->bos_id())) ids.insert(ids.begin(), m.tok->bos_id());
  } else {
    grammar = completion_grammar(p);
    r.render_special = grammar != nullptr;  // the grammar matched control tokens as text
    if (p.prompt_is_ids) {
      for (int32_t id : p.prompt_ids)
        if (id >= m.tok->n_vocab())
          throw ApiError(400, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                  std::to_string(m.tok->n_vocab()) + " tokens)", "prompt");
      ids = p.prompt_ids;
    } else {
      ids = m.tok->encode(p.prompt_text, true, false);
    }
  }
  if (ids.empty()) throw ApiError(400, "the prompt is empty", p.chat ? "messages" : "prompt");
  r.prompt_tokens = static_cast<int64_t>(ids.size());
  const int64_t max_tokens = p.max_tokens > 0 ? p.max_tokens : m.ctx - r.prompt_tokens;
  check_context(m, p, r.prompt_tokens, max_tokens);
  r.gen.prompt = std::move(ids);
  r.gen.sampling = p.sampling;
  if (grammar) {
    r.gen.sampling.grammar = grammar;
    r.gen.sampling.vocab = m.trie;
  }
  r.gen.max_tokens = static_cast<int32_t>(max_tokens);
  r.gen.stop_ids = m.stop_ids;
  r.gen.top_logprobs = p.logprobs ? p.top_logprobs : -1;
  try {
    r.gen.sampling.validate();
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  return r;
}

std::string StopMatcher::push(const std::string& text, bool& stopped) {
  held_ += text;
  size_t first = std::string::npos;
  for (auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  size_t keep = 0;  // longest suffix of held_ that begins some stop sequence
  for (auto& s : stops_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  // Never split a UTF-8 character.
  size_t cut = held_.size() - keep;
  while (cut > 0 && cut < held_.size() && (static_cast<unsigned char>(held_[cut]) & 0xC0) == 0x80) --cut;
  std::string out = held_.substr(0, cut);
  held_.erase(0, cut);
  return out;
}

ResultStream::ResultStream(const ModelContext& m, const CompletionParams& p, const PreparedRequest& prep,
                           std::shared_ptr<RequestHandle> handle)
    : m_(m), handle_(std::move(handle)), dec_(*m.tok, prep.render_special), stops_(p.stop) {
  if (p.chat) parser_ = std::make_unique<ChatOutputParser>(m.format, prep.in_reasoning, prep.parse_tools, p.tools);
  single_call_ = !p.parallel_tool_calls;
}

double ResultStream::seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

std::string ResultStream::finish_reason() const {
  if (!calls_.empty() && finish_reason_ != "length") return "tool_calls";
  return finish_reason_;
}

void ResultStream::emit(std::vector<OutputDelta> deltas, std::vector<OutputDelta>& out) {
  for (auto& d : deltas) {
    // parallel_tool_calls false: a model that writes more than one call gets the first.
    const bool call = d.kind == OutputDelta::Kind::ToolCallStart || d.kind == OutputDelta::Kind::ToolCallArguments;
    if (call && single_call_ && d.index > 0) continue;
    switch (d.kind) {
      case OutputDelta::Kind::Content: content_ += d.text; break;
      case OutputDelta::Kind::Reasoning: reasoning_ += d.text; break;
      case OutputDelta::Kind::ToolCallStart: calls_.push_back({d.id, d.name, ""}); break;
      case OutputDelta::Kind::ToolCallArguments:
        if (!calls_.empty()) calls_.back().arguments += d.text;
        break;
    }
    out.push_back(std::move(d));
  }
}

void ResultStream::on_text(const std::string& text, bool at_end, std::vector<OutputDelta>& out) {
  if (!parser_) {
    if (!text.empty()) emit({OutputDelta{OutputDelta::Kind::Content, sanitize_utf8(text)}}, out);
    return;
  }
  if (!text.empty()) emit(parser_->push(text), out);
  if (at_end) emit(parser_->finish(), out);
}

Json ResultStream::logprob_entry(int32_t id, float logprob) const {
  std::string bytes = m_.tok->token_bytes(id);
  Json b = Json::array();
  for (unsigned char c : bytes) b.push_back(c);
  return {{"token", sanitize_utf8(bytes)}, {"logprob", logprob}, {"bytes", b}};
}

Json ResultStream::error_json() const {
  if (unavailable_) return error_body("service unavailable: " + error_, "server_error", "", "service_unavailable");
  return error_body("generation failed: " + error_, "server_error");
}

bool ResultStream::next(std::vector<OutputDelta>& out, Json* logprobs, int timeout_ms) {
  if (done_) return true;
  TokenEvent ev;
  if (!handle_->next(ev, timeout_ms)) return false;
  try {
    on_event(ev, out, logprobs);
  } catch (const std::exception& e) {  // e.g. a token id the tokenizer does not know
    error_ = e.what();
    done_ = true;
    handle_->cancel();
  }
  return true;
}

void ResultStream::on_event(const TokenEvent& ev, std::vector<OutputDelta>& out, Json* logprobs) {
  if (ev.kind == TokenEvent::Kind::Error) {
    error_ = ev.error;
    unavailable_ = ev.unavailable;
    done_ = true;
    return;
  }
  if (ev.kind == TokenEvent::Kind::Done) {
    finish_reason_ = ev.finish_reason;
    done_ = true;
    bool stopped = false;
    on_text(stops_.push(dec_.flush(), stopped) + stops_.flush(), true, out);
    return;
  }
  auto now = Clock::now();
  if (m_.metrics) {
    if (completion_tokens_ == 0) m_.metrics->observe_ttft(std::chrono::duration<double>(now - start_).count());
    else m_.metrics->observe_token_latency(std::chrono::duration<double>(now - last_).count());
    m_.metrics->add_generated_tokens(1);
  }
  last_ = now;
  ++completion_tokens_;
  if (parser_ && parser_->in_reasoning()) ++reasoning_tokens_;
  const bool eog = std::find(m_.stop_ids.begin(), m_.stop_ids.end(), ev.id) != m_.stop_ids.end();
  if (logprobs && !eog) {
    Json e = logprob_entry(ev.id, ev.logprob);
    Json top = Json::array();
    for (auto& [tid, lp] : ev.top) top.push_back(logprob_entry(tid, lp));
    e["top_logprobs"] = top;
    logprobs->push_back(e);
  }
  if (eog) return;
  bool stopped = false;
  std::string text = stops_.push(dec_.push(ev.id), stopped);
  if (stopped) {  // a stop sequence: the rest of the generation is not wanted
    finish_reason_ = "stop";
    done_ = true;
    handle_->cancel();
  }
  on_text(text, stopped, out);
  return;
}

}  // namespace volga::server
