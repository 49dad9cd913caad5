// libFuzzer target: any bytes as a model's generated text, through every
// family's output parser (tool calls, reasoning), fed in pieces whose sizes
// come from the input. The parser must never crash, and what it reports must
// be consistent: every call's arguments are a JSON object, the deltas add up
// to the final content, reasoning and arguments, call indices count up.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "chat/output_parser.h"
#include "fuzz_check.h"

namespace {

// One template excerpt per family: enough text for detect_chat_format.
std::vector<volga::ChatFormat> formats() {
  std::vector<volga::ChatFormat> out;
  const char* sources[] = {
      "{{- '<tool_call>\\n' }}{{ tool_call.arguments | tojson }}{{- '</tool_call>' }}<think>",
      "<tool_call>\\n<function={{ tool_call.name }}>\\n<parameter={{ k }}>\\n</parameter>\\n</function>",
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>{{ name }}\\n```json\\n<｜tool▁call▁end｜>",
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{{ name }}<｜tool▁sep｜>{{ args }}<｜tool▁call▁end｜></think>",
      "<|python_tag|>{{ x }}<|eom_id|> {\"name\": function name, \"parameters\": dictionary",
      "[TOOL_CALLS]{{ calls }}[/TOOL_CALLS][AVAILABLE_TOOLS]",
      "function call<|role_sep|>\\n{{ call }}<|message_sep|>",
      "<|function_call|>{{ call }}",
      "{{ messages }}",
  };
  for (const char* s : sources) out.push_back(volga::detect_chat_format(s));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<volga::ChatFormat> fs = formats();
  if (size < 2) return 0;
  const volga::ChatFormat& f = fs[data[0] % fs.size()];
  const bool in_reasoning = data[1] & 1, parse_tools = data[1] & 2;
  const unsigned chunk_seed = data[1] >> 2;
  std::string text(reinterpret_cast<const char*>(data + 2), size - 2);
  volga::ChatOutputParser parser(f, in_reasoning, parse_tools);
  std::vector<volga::OutputDelta> all;
  size_t pos = 0, k = chunk_seed;
  while (pos < text.size()) {
    size_t n = 1 + (k * 7 + 3) % 13;
    k = k * 31 + 17;
    auto d = parser.push(std::string_view(text).substr(pos, n));
    all.insert(all.end(), d.begin(), d.end());
    pos += n;
  }
  auto d = parser.finish();
  all.insert(all.end(), d.begin(), d.end());
  std::string content, reasoning;
  std::vector<std::string> args;
  for (auto& e : all) {
    using K = volga::OutputDelta::Kind;
    if (e.kind == K::Content) content += e.text;
    else if (e.kind == K::Reasoning) reasoning += e.text;
    else if (e.kind == K::ToolCallStart) {
      FUZZ_CHECK(e.index == static_cast<int>(args.size()));
      FUZZ_CHECK(!e.name.empty() && !e.id.empty());
      args.emplace_back();
    } else {
      FUZZ_CHECK(!args.empty() && e.index + 1 == static_cast<int>(args.size()));
      args.back() += e.text;
    }
  }
  FUZZ_CHECK(content == parser.content());
  FUZZ_CHECK(reasoning == parser.reasoning());
  FUZZ_CHECK(args.size() == parser.tool_calls().size());
  for (size_t i = 0; i < args.size(); ++i) {
    FUZZ_CHECK(args[i] == parser.tool_calls()[i].arguments);
    auto j = nlohmann::ordered_json::parse(args[i], nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object());
  }
  if (!parse_tools) FUZZ_CHECK(args.empty());
  return 0;
}
