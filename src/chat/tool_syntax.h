// Readers of one model family's tool-call markup, used by ChatOutputParser
// (chat/output_parser.h). A reader is told where markup may begin (its
// markers) and, given the text from a marker on, says whether that text is
// already a whole piece of markup (and which calls it holds), may still
// become one, or is not markup at all.
//
// Immutable after construction; scan() is const and may be called from any thread.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_format.h"

namespace volga {

struct ParsedCall {
  std::string name;
  nlohmann::ordered_json arguments;  // always an object
};

struct MarkupScan {
  enum class Status { NeedMore, Complete, Invalid };
  Status status = Status::NeedMore;
  size_t length = 0;             // Complete: bytes of markup read
  std::vector<ParsedCall> calls;  // Complete: the calls read (may be none: a bare section marker)
};

struct Marker {
  std::string text;
  bool only_at_start = false;    // only where nothing but whitespace came since the start or the last call
  bool only_after_call = false;  // only where nothing but whitespace came since the last call
};

class ToolSyntax {
 public:
  virtual ~ToolSyntax() = default;
  const std::vector<Marker>& markers() const { return markers_; }
  // `text` begins with markers()[marker].text. `at_end`: no more text will come.
  virtual MarkupScan scan(std::string_view text, size_t marker, bool at_end) const = 0;

 protected:
  std::vector<Marker> markers_;
};

// The reader for f.tools (nullptr for ToolCallStyle::None). `tools` (the
// request's OpenAI tool list, may be null) gives parameter types to formats
// that write values as bare text (Qwen3-Coder).
std::unique_ptr<ToolSyntax> make_tool_syntax(const ChatFormat& f, const nlohmann::ordered_json& tools);

// ---- helpers shared by the readers (tool_syntax_*.cpp) ----
namespace markup {

// How `text` at `pos` compares with `literal`.
enum class Match { Yes, Partial /* text ends inside a prefix of literal */, No };
Match match_at(std::string_view text, size_t pos, std::string_view literal);

size_t skip_ws(std::string_view text, size_t pos);

// End (one past) of the JSON object, array or string starting at text[pos]
// ('{', '[' or '"'), found by bracket counting outside strings; npos when the
// text ends first. Does not validate: parse the extent afterwards.
size_t json_extent(std::string_view text, size_t pos);

// Parses text as JSON; discarded (is_discarded()) when it is not valid.
nlohmann::ordered_json parse_json(std::string_view text);

// {"name": ..., "arguments"|"parameters": {...} or a string holding an object}
// -> a call; false when the object is not shaped like one.
bool call_from_object(const nlohmann::ordered_json& obj, ParsedCall& call);

// Arguments given as an object, a string holding one, or null -> an object;
// false otherwise.
bool arguments_object(const nlohmann::ordered_json& value, nlohmann::ordered_json& out);

MarkupScan need_more(bool at_end);
MarkupScan invalid();
MarkupScan complete(size_t length, std::vector<ParsedCall> calls);

}  // namespace markup

// Family readers (defined in tool_syntax_json.cpp and tool_syntax_tagged.cpp).
std::unique_ptr<ToolSyntax> make_hermes_syntax();
std::unique_ptr<ToolSyntax> make_llama3_syntax();
std::unique_ptr<ToolSyntax> make_mistral_syntax();
std::unique_ptr<ToolSyntax> make_gigachat_syntax();
std::unique_ptr<ToolSyntax> make_qwen3_coder_syntax(const nlohmann::ordered_json& tools);
std::unique_ptr<ToolSyntax> make_deepseek_syntax();

}  // namespace volga
