// Forced tool-call grammars (sampling/tool_grammar.h), checked two ways:
//  1. what the real chat template renders for a call is a sentence of the
//     grammar (GrammarMatcher accepts it and is complete there);
//  2. random walks through the grammar parse back (chat/output_parser.h)
//     into calls of the allowed tools, with arguments valid for their schema.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "chat/output_parser.h"
#include "sampling/tool_grammar.h"
#include "sampling/grammar.h"
#include "sampling/json_schema.h"
#include "tool_call_fixtures.h"
#include "util/error.h"

using namespace volga;
using namespace volga::tool_call_fixtures;

namespace {

// ---- a small validator for the schemas the tests use -------------------------------

bool valid_for(const json& v, const json& schema) {
  if (!schema.is_object()) return true;
  if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), v) == schema["enum"].end())
    return false;
  if (schema.contains("type")) {
    std::set<std::string> types;
    if (schema["type"].is_string()) types.insert(schema["type"].get<std::string>());
    else for (const json& t : schema["type"]) types.insert(t.get<std::string>());
    bool ok = (types.count("string") && v.is_string()) || (types.count("integer") && v.is_number_integer()) ||
              (types.count("number") && v.is_number()) || (types.count("boolean") && v.is_boolean()) ||
              (types.count("null") && v.is_null()) || (types.count("object") && v.is_object()) ||
              (types.count("array") && v.is_array());
    if (!ok) return false;
  }
  if (v.is_object() && schema.contains("properties")) {
    for (const json& r : schema.value("required", json::array()))
      if (!v.contains(r.get<std::string>())) return false;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!schema["properties"].contains(it.key())) {
        if (schema.value("additionalProperties", json(true)) == false) return false;
        continue;
      }
      if (!valid_for(it.value(), schema["properties"][it.key()])) return false;
    }
  }
  if (v.is_array() && schema.contains("items"))
    for (const json& x : v)
      if (!valid_for(x, schema["items"])) return false;
  return true;
}

const json* parameters_of(const json& tools, const std::string& name) {
  for (const json& t : tools)
    if (t["function"]["name"] == name) return &t["function"]["parameters"];
  return nullptr;
}

// ---- walking a grammar ---------------------------------------------------------------

// A random sentence: random allowed bytes until `budget`, then random
// closers (stop markers, string/object/array ends) where they fit.
std::string random_sentence(const std::shared_ptr<const Grammar>& g, std::mt19937& rng, size_t budget,
                            const std::vector<std::string>& closers) {
  GrammarMatcher m(g);
  std::string out;
  for (int step = 0; step < 20000; ++step) {
    bool over = out.size() > budget;
    if (m.is_complete() && (over || rng() % 8 == 0)) return out;
    if (over) {  // a random closer that fits: some end the current string, value or text
      std::vector<const std::string*> fitting;
      for (const std::string& c : closers)
        if (m.can_accept_bytes(c)) fitting.push_back(&c);
      if (!fitting.empty()) {
        const std::string& c = *fitting[rng() % fitting.size()];
        EXPECT_TRUE(m.accept_bytes(c));
        out += c;
        continue;
      }
    }
    std::bitset<256> next = m.next_bytes();
    std::vector<unsigned char> allowed;
    for (int b = 0; b < 256; ++b)
      if (next[static_cast<size_t>(b)]) allowed.push_back(static_cast<unsigned char>(b));
    if (allowed.empty()) {
      EXPECT_TRUE(m.is_complete()) << "dead end after: " << out;
      return out;
    }
    char b = static_cast<char>(allowed[rng() % allowed.size()]);
    EXPECT_TRUE(m.accept_bytes(std::string(1, b)));
    out += b;
  }
  ADD_FAILURE() << "the walk did not finish: " << out.substr(0, 400);
  return out;
}

bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text, std::string& why) {
  GrammarMatcher m(g);
  for (size_t i = 0; i < text.size(); ++i)
    if (!m.accept_bytes(text.substr(i, 1))) {
      why = "refused at byte " + std::to_string(i) + ": ..." + text.substr(i > 40 ? i - 40 : 0, std::min<size_t>(i, 40)) +
            "[HERE]" + text.substr(i, 40);
      return false;
    }
  if (!m.is_complete()) why = "accepted but not complete";
  return m.is_complete();
}

std::string trim(const std::string& s) {
  const char* space = " \t\r\n\f\v";
  size_t b = s.find_first_not_of(space);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(space) - b + 1);
}

// Drops an empty reasoning block the model wrote itself ("<think>\n\n</think>\n\n").
std::string without_think_block(const ChatFormat& f, const std::string& text) {
  if (!f.reasoning || text.compare(0, f.think_open.size(), f.think_open) != 0) return text;
  size_t close = text.find(f.think_close);
  return trim(text.substr(close + f.think_close.size()));
}

class ToolCallsGrammar : public ::testing::TestWithParam<TemplateCase> {
 protected:
  void SetUp() override {
    source_ = template_source(GetParam().file);
    format_ = detect_chat_format(source_);
  }
  std::shared_ptr<const Grammar> grammar(bool parallel, bool reasoning_first, const std::string& only = "") const {
    std::string text = tool_call_grammar(format_, tool_definitions(), only, parallel, reasoning_first);
    try {
      return Grammar::parse(text);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what() << "\n" << text;
      throw;
    }
  }
  std::string source_;
  ChatFormat format_;
};

TEST_P(ToolCallsGrammar, AcceptsWhatTheTemplateRenders) {
  const TemplateCase& c = GetParam();
  ChatTemplate t(source_, "<s>", "</s>");
  json history = json::array({{{"role", "user"}, {"content", "Погода?"}}});
  std::vector<Call> all = sample_calls();
  std::vector<std::vector<Call>> groups;
  if (c.max_calls == 1 || c.max_calls >= 4)
    for (const Call& call : all) groups.push_back({call});
  if (c.max_calls > 1) groups.push_back(std::vector<Call>(all.begin(), all.begin() + static_cast<long>(std::min<size_t>(c.max_calls, 4))));
  if (std::string(c.file).find("R1-Distill-Llama") != std::string::npos)
    groups = {{all[0], all[1]}, {all[2], all[3]}};  // its template closes the list only after a second call
  for (const std::vector<Call>& calls : groups) {
    Generated g = generated_turn(t, format_, history, assistant_message(calls, nullptr));
    std::string text = g.in_reasoning ? g.text : without_think_block(format_, g.text);
    std::string why;
    EXPECT_TRUE(accepts(grammar(calls.size() > 1, g.in_reasoning), text, why)) << why << "\nrendered:\n" << text;
    if (calls.size() == 1) {
      EXPECT_TRUE(accepts(grammar(false, g.in_reasoning, calls[0].name), text, why)) << why;
      std::string other = calls[0].name == "noop" ? "search" : "noop";
      EXPECT_FALSE(accepts(grammar(false, g.in_reasoning, other), text, why)) << "a call of another tool was accepted";
    }
  }
}

TEST_P(ToolCallsGrammar, RandomSentencesParseIntoValidCalls) {
  json tools = tool_definitions();
  std::vector<std::string> closers = {"</parameter>", format_.think_close, "\"", "}", "]", "0"};
  std::vector<bool> reasoning_modes = {false};
  if (format_.reasoning) reasoning_modes.push_back(true);
  int walks = 0;
  for (bool reasoning_first : reasoning_modes) {
    for (bool parallel : {false, true}) {
      for (std::string only : {"", "set_flags", "search"}) {
        auto g = grammar(parallel, reasoning_first, only);
        std::mt19937 rng(7u + static_cast<unsigned>(walks));
        for (int i = 0; i < 12; ++i, ++walks) {
          std::string text = random_sentence(g, rng, 60 + rng() % 200, closers);
          SCOPED_TRACE(::testing::Message() << "walk " << walks << ":\n" << text);
          ChatOutputParser p(format_, reasoning_first, true, tools);
          p.push(text);
          p.finish();
          ASSERT_FALSE(p.tool_calls().empty()) << "content: " << p.content().substr(0, 2000);
          if (!parallel || GetParam().max_calls == 1) {
            EXPECT_EQ(p.tool_calls().size(), 1u);
          }
          EXPECT_EQ(p.content(), "");
          if (reasoning_first) {
            EXPECT_EQ(p.reasoning(), trim(text.substr(0, text.find(format_.think_close))));
          }
          for (const ToolCall& call : p.tool_calls()) {
            if (!only.empty()) {
              EXPECT_EQ(call.name, only);
            }
            const json* params = parameters_of(tools, call.name);
            ASSERT_NE(params, nullptr) << "unknown tool " << call.name;
            json args = json::parse(call.arguments, nullptr, false);
            ASSERT_TRUE(args.is_object()) << call.arguments;
            EXPECT_TRUE(valid_for(args, *params)) << call.name << " " << call.arguments;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ToolCalls, ToolCallsGrammar, ::testing::ValuesIn(kTemplates),
                         template_test_name);

}  // namespace

TEST(ToolCallsGrammarErrors, RefusalsSayWhatIsWrong) {
  ChatFormat hermes = format_of("Qwen-Qwen3-0.6B.jinja");
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message([&] { tool_call_grammar(hermes, tool_definitions(), "missing", false, false); }).find("missing"),
            std::string::npos);
  EXPECT_NE(message([&] { tool_call_grammar(hermes, json::array(), "", false, false); }).find("no tools"), std::string::npos);
  EXPECT_NE(message([&] { tool_call_grammar(ChatFormat{}, tool_definitions(), "", false, false); }).find("tool-call format"),
            std::string::npos);
  EXPECT_NE(message([&] { tool_call_grammar(hermes, json::parse(R"([{"type": "function"}])"), "", false, false); })
                .find("tools[0]"),
            std::string::npos);
  ChatFormat coder = format_of("Qwen3-Coder.jinja");
  json patterned = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
      "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}}}}}])");
  EXPECT_NE(message([&] { tool_call_grammar(coder, patterned, "", false, false); }).find("pattern"), std::string::npos);
  EXPECT_NO_THROW(tool_call_grammar(hermes, patterned, "", false, false)) << "JSON formats enforce patterns";
}

TEST(ToolCallsGrammarErrors, ReasoningComesFirstWhenAsked) {
  ChatFormat f = format_of("Qwen3.5-4B.jinja");
  auto g = Grammar::parse(tool_call_grammar(f, tool_definitions(), "noop", false, true));
  std::string why;
  EXPECT_TRUE(accepts(g, "Думаю… <think> </thin\n</think>\n\n<tool_call>\n<function=noop>\n</function>\n</tool_call>", why))
      << why;
  EXPECT_FALSE(accepts(g, "a</think></think>\n<tool_call>\n<function=noop>\n</function>\n</tool_call>", why));
  EXPECT_FALSE(accepts(g, "<tool_call>\n<function=noop>\n</function>\n</tool_call>", why)) << "reasoning must close first";
}
