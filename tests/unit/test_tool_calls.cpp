// Tool-call and reasoning parsing (chat/output_parser.h), format detection
// and message normalisation (chat/chat_format.h).
//
// Oracle: the real chat templates in ../shared/testdata/templates, rendered
// by Volga's Jinja interpreter (itself checked against Python's jinja2 in
// tests/e2e/test_chat_templates.py). A conversation's assistant turn with
// tool calls is rendered, cut out of the prompt, and fed to the parser, which
// must give the same calls back — whole, byte by byte and in random pieces.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "tool_call_fixtures.h"
#include "util/error.h"

using namespace volga;
using json = nlohmann::ordered_json;

namespace {

using namespace volga::tool_call_fixtures;

// ---- feeding the parser --------------------------------------------------------

struct Parsed {
  std::string content, reasoning;
  std::vector<ToolCall> calls;
  std::vector<OutputDelta> deltas;
};

enum class Split { Whole, Bytes, Random };

Parsed parse(const ChatFormat& f, const std::string& text, bool in_reasoning, Split split, bool parse_tools = true,
             const json& tools = tool_definitions(), unsigned seed = 1) {
  ChatOutputParser p(f, in_reasoning, parse_tools, tools);
  Parsed r;
  auto take = [&](std::vector<OutputDelta> d) { r.deltas.insert(r.deltas.end(), d.begin(), d.end()); };
  std::mt19937 rng(seed);
  for (size_t i = 0; i < text.size();) {
    size_t n = split == Split::Whole ? text.size() : split == Split::Bytes ? 1 : 1 + rng() % 7;
    n = std::min(n, text.size() - i);
    take(p.push(std::string_view(text).substr(i, n)));
    i += n;
  }
  take(p.finish());
  r.content = p.content();
  r.reasoning = p.reasoning();
  r.calls = p.tool_calls();
  return r;
}

bool is_call_id(const std::string& id) {
  if (id.size() != 29 || id.compare(0, 5, "call_") != 0) return false;
  for (size_t i = 5; i < id.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(id[i]))) return false;
  return true;
}

// The deltas tell the same story as the final state.
void expect_consistent_deltas(const Parsed& r) {
  std::string content, reasoning;
  std::vector<std::string> args(r.calls.size());
  int next_index = 0;
  for (const OutputDelta& d : r.deltas) {
    switch (d.kind) {
      case OutputDelta::Kind::Content: content += d.text; break;
      case OutputDelta::Kind::Reasoning: reasoning += d.text; break;
      case OutputDelta::Kind::ToolCallStart:
        ASSERT_EQ(d.index, next_index) << "tool-call indices must count up from 0";
        ASSERT_LT(static_cast<size_t>(d.index), r.calls.size());
        EXPECT_EQ(d.id, r.calls[static_cast<size_t>(d.index)].id);
        EXPECT_EQ(d.name, r.calls[static_cast<size_t>(d.index)].name);
        ++next_index;
        break;
      case OutputDelta::Kind::ToolCallArguments:
        ASSERT_EQ(d.index, next_index - 1) << "arguments for a call that has not started";
        args[static_cast<size_t>(d.index)] += d.text;
        break;
    }
  }
  EXPECT_EQ(content, r.content);
  EXPECT_EQ(reasoning, r.reasoning);
  EXPECT_EQ(static_cast<size_t>(next_index), r.calls.size());
  std::set<std::string> ids;
  for (size_t i = 0; i < r.calls.size(); ++i) {
    EXPECT_EQ(args[i], r.calls[i].arguments) << "fragments of call " << i << " do not add up to its arguments";
    EXPECT_TRUE(is_call_id(r.calls[i].id)) << r.calls[i].id;
    ids.insert(r.calls[i].id);
  }
  EXPECT_EQ(ids.size(), r.calls.size()) << "tool-call ids must be unique";
}

const char* const kMarkup[] = {"<tool_call>", "</tool_call>", "<function=", "<parameter=", "tool▁", "[TOOL_CALLS]",
                               "<|function_call|>", "function call<|role_sep|>", "\"parameters\"", "<|python_tag|>",
                               "<think>", "</think>"};

void expect_no_markup(const std::string& text) {
  for (const char* m : kMarkup) EXPECT_EQ(text.find(m), std::string::npos) << "markup '" << m << "' leaked into: " << text;
}

void expect_calls(const std::vector<ToolCall>& got, const std::vector<Call>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    json args = json::parse(got[i].arguments, nullptr, false);
    ASSERT_FALSE(args.is_discarded()) << "arguments are not JSON: " << got[i].arguments;
    EXPECT_EQ(args, want[i].arguments) << "call " << i << " (" << want[i].name << ")";
  }
}

class ToolCallsTemplate : public ::testing::TestWithParam<TemplateCase> {
 protected:
  void SetUp() override {
    source_ = template_source(GetParam().file);
    format_ = detect_chat_format(source_);
  }
  ChatTemplate make_template() const { return ChatTemplate(source_, "<s>", "</s>"); }
  static json history() { return json::array({{{"role", "user"}, {"content", "Какая погода? 天气怎么样?"}}}); }

  // Every group of calls the template renders, parsed back in every split.
  void round_trip(const std::vector<Call>& calls, const json& content, const std::string& want_content) {
    ChatTemplate t = make_template();
    Generated g = generated_turn(t, format_, history(), assistant_message(calls, content));
    for (Split split : {Split::Whole, Split::Bytes, Split::Random}) {
      SCOPED_TRACE(::testing::Message() << "split " << static_cast<int>(split) << ", generated text:\n" << g.text);
      Parsed r = parse(format_, g.text, g.in_reasoning, split);
      expect_calls(r.calls, calls);
      EXPECT_EQ(r.content, want_content);
      EXPECT_EQ(r.reasoning, "");
      expect_no_markup(r.content);
      expect_consistent_deltas(r);
    }
  }

  std::string source_;
  ChatFormat format_;
};

TEST_P(ToolCallsTemplate, DetectsTheFormat) {
  const TemplateCase& c = GetParam();
  EXPECT_EQ(format_.tools, c.style);
  EXPECT_EQ(format_.name, c.name);
  EXPECT_EQ(format_.reasoning, c.reasoning);
}

TEST_P(ToolCallsTemplate, CallsRoundTrip) {
  const TemplateCase& c = GetParam();
  std::vector<Call> all = sample_calls();
  if (c.max_calls == 1) {
    for (const Call& call : all) round_trip({call}, nullptr, "");
  } else {
    round_trip({all[0]}, nullptr, "");
    round_trip(std::vector<Call>(all.begin(), all.begin() + static_cast<long>(std::min(c.max_calls, all.size()))), nullptr, "");
    round_trip({all[3]}, nullptr, "");
  }
}

TEST_P(ToolCallsTemplate, ContentBeforeCallsStaysContent) {
  const TemplateCase& c = GetParam();
  if (!c.content_with_calls) GTEST_SKIP() << "the template renders no content next to calls";
  std::vector<Call> all = sample_calls();
  const std::string text = "Сейчас проверю: «погода» & 天气 {x}.";
  round_trip({all[0]}, text, text);
  if (c.max_calls > 1) round_trip({all[1], all[2]}, text, text);
}

TEST_P(ToolCallsTemplate, MarkupStaysContentWithoutTools) {
  const TemplateCase& c = GetParam();
  ChatTemplate t = make_template();
  std::vector<Call> all = sample_calls();
  Generated g = generated_turn(t, format_, history(), assistant_message({all[1]}, nullptr));
  Parsed r = parse(format_, g.text, g.in_reasoning, Split::Bytes, /*parse_tools=*/false);
  EXPECT_TRUE(r.calls.empty());
  EXPECT_NE(r.content.find("search"), std::string::npos) << r.content;
  EXPECT_NE(r.content.find("北京"), std::string::npos) << r.content;
  expect_consistent_deltas(r);
  (void)c;
}

// A call cut off anywhere inside its markup is not reported, and its text
// comes back as content.
TEST_P(ToolCallsTemplate, UnfinishedCallBecomesContent) {
  ChatTemplate t = make_template();
  std::vector<Call> all = sample_calls();
  Generated g = generated_turn(t, format_, history(), assistant_message({all[1]}, nullptr));
  size_t name_at = g.text.find("search");
  ASSERT_NE(name_at, std::string::npos);
  size_t args_end = g.text.rfind("d\\n e");
  if (args_end == std::string::npos) args_end = g.text.rfind("d\n e");
  ASSERT_NE(args_end, std::string::npos) << g.text;
  for (size_t cut : {name_at + 3, args_end}) {
    std::string text = g.text.substr(0, cut);
    for (Split split : {Split::Whole, Split::Bytes}) {
      Parsed r = parse(format_, text, g.in_reasoning, split);
      EXPECT_TRUE(r.calls.empty()) << text;
      EXPECT_NE(r.content.find(text.substr(name_at, cut - name_at)), std::string::npos)
          << "cut text lost; content: " << r.content;
      expect_consistent_deltas(r);
    }
  }
}

TEST_P(ToolCallsTemplate, ReasoningRoundTrip) {
  const TemplateCase& c = GetParam();
  if (!c.renders_reasoning) GTEST_SKIP() << "the template does not render reasoning_content";
  ChatTemplate t = make_template();
  std::vector<Call> all = sample_calls();
  const std::string thought = "Пользователь спрашивает о погоде.\nНужно вызвать get_weather <b>.";
  for (bool with_calls : {false, true}) {
    std::vector<Call> calls = with_calls ? std::vector<Call>{all[0], all[2]} : std::vector<Call>{};
    Generated g = generated_turn(t, format_, history(), assistant_message(calls, "Готово.", thought));
    for (Split split : {Split::Whole, Split::Bytes, Split::Random}) {
      SCOPED_TRACE(g.text);
      Parsed r = parse(format_, g.text, g.in_reasoning, split);
      EXPECT_EQ(r.reasoning, thought);
      EXPECT_EQ(r.content, "Готово.");
      expect_calls(r.calls, calls);
      expect_no_markup(r.content);
      expect_consistent_deltas(r);
    }
  }
}

// An OpenAI-shaped history renders without raising once normalised.
TEST_P(ToolCallsTemplate, NormalizedOpenAIHistoryRenders) {
  json messages = json::parse(R"([
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Погода в "}, {"type": "text", "text": "Москве?"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abc123def456ghi789jkl012", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\": \"Москва\"}"}},
      {"id": "call_zzz", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"q\"}"}}],
     "refusal": null, "annotations": []},
    {"role": "tool", "tool_call_id": "call_abc123def456ghi789jkl012", "content": "{\"temp\": -5}"},
    {"role": "tool", "tool_call_id": "call_zzz", "content": [{"type": "text", "text": "found"}]},
    {"role": "assistant", "content": "Минус пять."},
    {"role": "user", "content": "Спасибо"}
  ])");
  ChatTemplate t = make_template();
  json normalized = normalize_messages(messages, format_);
  ChatRenderOptions opts;
  opts.tools = tool_definitions();
  std::string text;
  ASSERT_NO_THROW(text = t.render(normalized, opts));
  EXPECT_NE(text.find("get_weather"), std::string::npos);
  EXPECT_NE(text.find("Москва"), std::string::npos);
  EXPECT_NE(text.find("Погода в Москве?"), std::string::npos);
  EXPECT_NE(text.find("Be brief."), std::string::npos);
  EXPECT_NE(text.find("Минус пять."), std::string::npos);
  if (GetParam().max_calls > 1) {
    EXPECT_NE(text.find("search"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(ToolCalls, ToolCallsTemplate, ::testing::ValuesIn(kTemplates),
                         template_test_name);

}  // namespace

// ---- hand-written cases -----------------------------------------------------------

TEST(ChatFormat, UnknownTemplatesHaveNoToolFormat) {
  ChatFormat f = detect_chat_format(ChatTemplate::chatml_source());
  EXPECT_EQ(f.tools, ToolCallStyle::None);
  EXPECT_FALSE(f.reasoning);
  EXPECT_EQ(detect_chat_format("{{ messages }}").tools, ToolCallStyle::None);
}

TEST(ChatFormat, TemplateQuirksAreDetected) {
  ChatFormat llama_distill = format_of("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja");
  EXPECT_TRUE(llama_distill.null_content_with_tool_calls);
  EXPECT_TRUE(llama_distill.string_arguments);
  ChatFormat qwen_distill = format_of("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja");
  EXPECT_TRUE(qwen_distill.null_content_with_tool_calls);
  EXPECT_FALSE(format_of("Qwen-Qwen3-0.6B.jinja").null_content_with_tool_calls);
  EXPECT_FALSE(qwen_distill.string_arguments);
  EXPECT_EQ(format_of("mistralai-Mistral-Nemo-Instruct-2407.jinja").tool_call_id_length, 9u);
  EXPECT_EQ(format_of("Qwen-Qwen3-0.6B.jinja").tool_call_id_length, 0u);
  EXPECT_TRUE(format_of("meta-llama-Llama-3.1-8B-Instruct.jinja").single_call_per_turn);
  EXPECT_FALSE(format_of("Qwen3-Coder.jinja").single_call_per_turn);
}

TEST(ChatFormat, PromptOpensReasoning) {
  json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  auto opens = [&](const char* file, json vars) {
    std::string src = template_source(file);
    ChatFormat f = detect_chat_format(src);
    ChatRenderOptions o;
    o.extra_vars = std::move(vars);
    return prompt_opens_reasoning(f, ChatTemplate(src, "<s>", "</s>").render(normalize_messages(messages, f), o));
  };
  EXPECT_TRUE(opens("Qwen3.5-4B.jinja", json::object()));
  EXPECT_FALSE(opens("Qwen3.5-4B.jinja", {{"enable_thinking", false}}));
  EXPECT_FALSE(opens("Qwen-Qwen3-0.6B.jinja", json::object()));  // the model opens <think> itself
  EXPECT_TRUE(opens("Qwen-QwQ-32B.jinja", {{"enable_thinking", true}}));
  EXPECT_TRUE(opens("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", json::object()));
  EXPECT_FALSE(opens("deepseek-ai-DeepSeek-V3.1.jinja", json::object()));
  EXPECT_TRUE(opens("deepseek-ai-DeepSeek-V3.1.jinja", {{"thinking", true}}));
  EXPECT_FALSE(opens("meta-llama-Llama-3.1-8B-Instruct.jinja", json::object()));
}

TEST(ToolCalls, ReasoningThenContent) {
  ChatFormat f = format_of("Qwen-Qwen3-0.6B.jinja");
  for (Split split : {Split::Whole, Split::Bytes, Split::Random}) {
    Parsed r = parse(f, "<think>\nlet me think: a < b </thin\n</think>\n\nThe answer.", false, split);
    EXPECT_EQ(r.reasoning, "let me think: a < b </thin");
    EXPECT_EQ(r.content, "The answer.");
    expect_consistent_deltas(r);
    Parsed open = parse(f, "still thinking <tool_call>", true, split);
    EXPECT_EQ(open.reasoning, "still thinking <tool_call>") << "reasoning cut off stays reasoning";
    EXPECT_EQ(open.content, "");
    Parsed plain = parse(f, "  No thinking here.\n", false, split);
    EXPECT_EQ(plain.content, "  No thinking here.\n") << "content alone is kept byte for byte";
  }
}

TEST(ToolCalls, ThinkTagsAreContentForFormatsWithoutReasoning) {
  ChatFormat f = format_of("Qwen-Qwen2.5-7B-Instruct.jinja");
  Parsed r = parse(f, "<think>x</think>y", false, Split::Bytes);
  EXPECT_EQ(r.content, "<think>x</think>y");
  EXPECT_EQ(r.reasoning, "");
}

TEST(ToolCalls, MalformedCallsAreContent) {
  ChatFormat hermes = format_of("Qwen-Qwen2.5-7B-Instruct.jinja");
  for (const char* text : {"Use <tool_call> tags like this.", "<tool_call>\n{not json}\n</tool_call>",
                           "<tool_call>\n{\"arguments\": {}}\n</tool_call>", "<tool_call>\n{\"name\": \"f\", \"arguments\": 5}\n</tool_call>",
                           "a <tool_call", "<tool_call>\n{\"name\": \"f\"}\n</tool_cal"}) {
    for (Split split : {Split::Whole, Split::Bytes}) {
      Parsed r = parse(hermes, text, false, split);
      EXPECT_TRUE(r.calls.empty()) << text;
      EXPECT_EQ(r.content, text);
      expect_consistent_deltas(r);
    }
  }
}

TEST(ToolCalls, CallsAmidContentKeepTheirOrder) {
  ChatFormat hermes = format_of("Qwen-Qwen3-0.6B.jinja");
  std::string text =
      "First.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": [2]}\"}</tool_call>\nThen more.";
  for (Split split : {Split::Whole, Split::Bytes, Split::Random}) {
    Parsed r = parse(hermes, text, false, split);
    expect_calls(r.calls, {{"a", {{"x", 1}}}, {"b", {{"y", {2}}}}});
    EXPECT_EQ(r.content, "First.Then more.");
    expect_consistent_deltas(r);
  }
}

TEST(ToolCalls, Llama3JsonThatIsNotACallIsContent) {
  ChatFormat f = format_of("meta-llama-Llama-3.1-8B-Instruct.jinja");
  for (Split split : {Split::Whole, Split::Bytes}) {
    Parsed r = parse(f, "{\"answer\": 42}", false, split);
    EXPECT_TRUE(r.calls.empty());
    EXPECT_EQ(r.content, "{\"answer\": 42}");
    Parsed later = parse(f, "The JSON is {\"name\": \"f\", \"parameters\": {}}", false, split);
    EXPECT_TRUE(later.calls.empty()) << "a call is only the whole reply";
    Parsed two = parse(f, "{\"name\": \"f\", \"parameters\": {\"a\": 1}}; {\"name\": \"g\", \"parameters\": {}}", false, split);
    expect_calls(two.calls, {{"f", {{"a", 1}}}, {"g", json::object()}});
    EXPECT_EQ(two.content, "");
    Parsed tagged = parse(f, "<|python_tag|>brave_search.call(query=\"погода\")", false, split);
    expect_calls(tagged.calls, {{"brave_search", {{"query", "погода"}}}});
  }
}

TEST(ToolCalls, Qwen3CoderValuesFollowTheSchema) {
  ChatFormat f = format_of("Qwen3-Coder.jinja");
  std::string text =
      "<tool_call>\n<function=get_weather>\n<parameter=city>\n123\n</parameter>\n<parameter=zip>\nnull\n</parameter>\n"
      "</function>\n</tool_call>";
  Parsed typed = parse(f, text, false, Split::Bytes);
  expect_calls(typed.calls, {{"get_weather", {{"city", "123"}, {"zip", "null"}}}});
  Parsed untyped = parse(f, text, false, Split::Bytes, true, json());
  expect_calls(untyped.calls, {{"get_weather", {{"city", 123}, {"zip", nullptr}}}});
  Parsed json_call = parse(f, "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>", false, Split::Bytes);
  expect_calls(json_call.calls, {{"noop", json::object()}});
  std::string tricky =
      "<tool_call>\n<function=search>\n<parameter=filters>\n{\"a\": \"</parameter>\"}\n</parameter>\n"
      "<parameter=query>\n\"quoted\" text\n</parameter>\n</function>\n</tool_call>";
  for (Split split : {Split::Whole, Split::Bytes}) {
    Parsed r = parse(f, tricky, false, split);
    expect_calls(r.calls, {{"search", {{"filters", {{"a", "</parameter>"}}}, {"query", "\"quoted\" text"}}}});
  }
}

TEST(ToolCalls, Utf8IsNeverSplitInDeltas) {
  ChatFormat f = format_of("Qwen-Qwen3-0.6B.jinja");
  std::string text = "<think>Думаю 思考</think>Ответ 答案 😀";
  Parsed r = parse(f, text, false, Split::Bytes);
  for (const OutputDelta& d : r.deltas) {
    if (d.text.empty()) continue;
    unsigned char last = static_cast<unsigned char>(d.text.back());
    EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80) << "delta ends inside a character";
    EXPECT_NE(static_cast<unsigned char>(d.text.front()) & 0xC0, 0x80) << "delta starts inside a character";
  }
  EXPECT_EQ(r.content, "Ответ 答案 😀");
}

TEST(ToolCalls, PushAfterFinishIsRefused) {
  ChatOutputParser p(format_of("Qwen-Qwen3-0.6B.jinja"), false, true);
  p.finish();
  EXPECT_THROW(p.push("x"), Error);
  EXPECT_TRUE(p.finish().empty());
}

TEST(ChatFormat, NormalizeMessagesShapesAndErrors) {
  json out = normalize_messages(json::parse(R"([
    {"role": "system", "content": "A"}, {"role": "developer", "content": [{"type": "text", "text": "B"}]},
    {"role": "user", "content": "hi", "name": "ann", "extra": 1},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "f", "arguments": "{\"a\": [1]}"}}, {"id": "c2", "type": "function",
      "function": {"name": "g", "arguments": "not json"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": null},
    {"role": "assistant", "content": "ok", "tool_calls": []}
  ])"));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], json({{"role", "system"}, {"content", "A\n\nB"}}));
  EXPECT_EQ(out[1], json({{"role", "user"}, {"content", "hi"}, {"name", "ann"}}));
  EXPECT_EQ(out[2]["content"], "");
  EXPECT_EQ(out[2]["tool_calls"][0]["function"]["arguments"], json({{"a", {1}}}));
  EXPECT_EQ(out[2]["tool_calls"][1]["function"]["arguments"], "not json");
  EXPECT_EQ(out[3], json({{"role", "tool"}, {"content", ""}, {"name", "f"}, {"tool_call_id", "c1"}}));
  EXPECT_FALSE(out[4].contains("tool_calls"));

  auto error_of = [](const char* messages) -> std::string {
    try {
      normalize_messages(json::parse(messages));
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(R"({"role": "user"})").find("list"), std::string::npos);
  EXPECT_NE(error_of(R"(["hi"])").find("messages[0]"), std::string::npos);
  EXPECT_NE(error_of(R"([{"role": 5, "content": "x"}])").find("role must be a string"), std::string::npos);
  EXPECT_NE(error_of(R"([{"role": "wizard", "content": "x"}])").find("wizard"), std::string::npos);
  EXPECT_NE(error_of(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])").find("image_url"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"role": "user", "content": 5}])").find("content"), std::string::npos);
  EXPECT_NE(error_of(R"([{"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}])").find("name"),
            std::string::npos);
}

TEST(ChatFormat, NormalizeAppliesTemplateQuirks) {
  json messages = json::parse(R"([{"role": "user", "content": "x"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abcdefghijklmnopqrstuvwx", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
      {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "r"}])");
  json mistral = normalize_messages(messages, format_of("mistralai-Mistral-Nemo-Instruct-2407.jinja"));
  std::string id = mistral[1]["tool_calls"][1]["id"];
  EXPECT_EQ(id.size(), 9u);
  EXPECT_EQ(mistral[2]["tool_call_id"], id) << "a call and its result keep matching ids";
  EXPECT_NE(mistral[1]["tool_calls"][0]["id"], id);
  json distill = normalize_messages(messages, format_of("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"));
  EXPECT_TRUE(distill[1]["content"].is_null());
  EXPECT_EQ(distill[1]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
  json llama = normalize_messages(messages, format_of("meta-llama-Llama-3.1-8B-Instruct.jinja"));
  ASSERT_EQ(llama.size(), 4u) << "one call per assistant turn";
  EXPECT_EQ(llama[1]["tool_calls"].size(), 1u);
  EXPECT_EQ(llama[2]["tool_calls"][0]["function"]["name"], "g");
}
