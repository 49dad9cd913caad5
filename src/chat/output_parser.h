// ChatOutputParser — splits a model's generated text, as it streams, into
// reply content, reasoning ("<think>…</think>") and tool calls, in the
// markup of the model's family (chat/chat_format.h).
//
// Streaming contract:
//  - push() returns what is certain so far; it holds back only text that may
//    still turn out to be markup: a tail that may be the start of a marker,
//    an unfinished call (a call is reported once its markup is complete),
//    trailing whitespace (dropped before a call and at the end of reasoning),
//    and an incomplete UTF-8 sequence.
//  - finish() flushes; an unfinished or malformed call becomes content, so no
//    text is lost.
//  - A call is reported as ToolCallStart (index, id, name) followed by its
//    ToolCallArguments; the fragments of one call concatenate to its final
//    `arguments`, compact JSON object text ("{}" when there are none).
//  - Indices count calls in order of appearance: 0, 1, 2…
//  - Whitespace right after a reasoning block or a call is dropped; content
//    before a call keeps everything but its trailing whitespace.
//
// One parser per generated message; not thread-safe.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_format.h"

namespace volga {

class ToolSyntax;

struct ToolCall {
  std::string id, name, arguments;  // arguments: JSON object text
};

struct OutputDelta {
  enum class Kind { Content, Reasoning, ToolCallStart, ToolCallArguments } kind;
  std::string text;  // Content/Reasoning text, or an arguments fragment
  int index = 0;     // tool-call index
  std::string id, name;  // ToolCallStart
};

class ChatOutputParser {
 public:
  // in_reasoning: generation starts inside an open reasoning block
  // (prompt_opens_reasoning). parse_tools: false when the request has no
  // tools or tool_choice "none" (then markup stays content).
  ChatOutputParser(const ChatFormat& f, bool in_reasoning, bool parse_tools);
  // `tools`: the request's OpenAI tool list; it gives parameter types to
  // formats that write values as bare text (Qwen3-Coder).
  ChatOutputParser(const ChatFormat& f, bool in_reasoning, bool parse_tools, const nlohmann::ordered_json& tools);
  ~ChatOutputParser();
  ChatOutputParser(ChatOutputParser&&) noexcept;
  ChatOutputParser& operator=(ChatOutputParser&&) noexcept;

  std::vector<OutputDelta> push(std::string_view text);
  std::vector<OutputDelta> finish();

  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::vector<ToolCall>& tool_calls() const { return calls_; }
  // Inside a reasoning block now (for counting reasoning tokens).
  bool in_reasoning() const { return mode_ == Mode::Reasoning; }

 private:
  enum class Mode { Start, Reasoning, Content, Markup };

  bool step(bool at_end);  // one state transition; false when waiting for more text
  bool step_start(bool at_end);
  bool step_reasoning(bool at_end);
  bool step_content(bool at_end);
  bool step_markup(bool at_end);
  bool marker_allowed(size_t marker, size_t pos) const;
  size_t find_marker(size_t& which) const;
  size_t marker_prefix_tail() const;
  void emit_content(std::string_view text);
  void emit_reasoning(std::string_view text);
  void emit_text(OutputDelta::Kind kind, std::string_view text);
  void emit_call(std::string name, const nlohmann::ordered_json& arguments);
  std::string new_call_id();

  ChatFormat f_;
  bool parse_tools_;
  std::unique_ptr<ToolSyntax> syntax_;
  Mode mode_ = Mode::Content;
  size_t marker_ = 0;               // Markup: which marker opened it
  std::string pending_;             // input not yet consumed
  std::string held_ws_;             // trailing whitespace of content / reasoning not yet emitted
  bool strip_leading_ = false;      // drop whitespace before the next content / reasoning text
  bool content_since_call_ = false; // non-whitespace content since the start or the last call
  bool finished_ = false;
  std::string content_, reasoning_;
  std::vector<ToolCall> calls_;
  std::vector<OutputDelta> out_;    // deltas of the current push()/finish()
  std::mt19937_64 rng_;
};

}  // namespace volga
