// libFuzzer target: any bytes as a chat template (templates arrive inside
// untrusted GGUF files). Parsing and rendering must either succeed or throw
// jinja::TemplateError / volga::Error — never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "chat/chat_template.h"
#include "chat/jinja.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  static const auto messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Ты полезный ассистент."},
    {"role": "user", "content": "你好 <think>"},
    {"role": "assistant", "content": "<think>x</think>ok", "tool_calls": [
      {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
    {"role": "tool", "tool_call_id": "abcdefghi", "content": "42"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}])");
  static const auto tools = nlohmann::ordered_json::parse(
      R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "array"}}}}}])");
  try {
    volga::ChatTemplate t(source, "<s>", "</s>");
    volga::ChatRenderOptions opts;
    opts.tools = tools;
    std::string out = t.render(messages, opts);
    FUZZ_CHECK(out.size() <= (size_t(64) << 20));  // the renderer's output cap holds
  } catch (const volga::jinja::TemplateError& e) {
    FUZZ_CHECK(e.line() >= 1 && e.column() >= 1);  // every error names a position
  } catch (const volga::Error&) {
  }
  return 0;
}
