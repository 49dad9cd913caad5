// Jinja interpreter properties that the jinja2 differential test
// (tests/e2e/test_chat_templates.py) cannot show: concurrent rendering of
// one parsed template, bounded nesting and recursion on hostile input, and
// errors carrying positions.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"
#include "chat/jinja.h"

using namespace volga;

TEST(Jinja, ConcurrentRendersOfOneTemplateAgree) {
  auto t = jinja::Template::parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{{ m.role }}:{{ m.content | upper }};{% endfor %}{{ ns.n }}");
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  for (int i = 0; i < 50; ++i) msgs.push_back({{"role", "user"}, {"content", "привет " + std::to_string(i)}});
  jinja::Dict vars;
  vars.set("messages", jinja::from_json(msgs));
  const std::string expected = t.render(vars);
  EXPECT_NE(expected.find("ПРИВЕТ 49;50"), std::string::npos);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      jinja::Dict v;
      v.set("messages", jinja::from_json(msgs));
      for (int rep = 0; rep < 20; ++rep) results[static_cast<size_t>(k)] = t.render(v);
    });
  for (auto& th : threads) th.join();
  for (auto& r : results) EXPECT_EQ(r, expected);
}

TEST(Jinja, HostileNestingIsRefusedNotACrash) {
  std::string deep = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  try {
    jinja::Template::parse(deep);
    FAIL() << "deep nesting was accepted";
  } catch (const jinja::TemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("nests too deeply"), std::string::npos);
  }
  std::string ifs;
  for (int i = 0; i < 10000; ++i) ifs += "{% if true %}";
  EXPECT_THROW(jinja::Template::parse(ifs), jinja::TemplateError);
  auto rec = jinja::Template::parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_THROW(rec.render({}), jinja::TemplateError);
  auto big = jinja::Template::parse("{{ range(100000000) | length }}");
  EXPECT_THROW(big.render({}), jinja::TemplateError);
}

TEST(Jinja, IntegerOverflowIsAnErrorNotUndefinedBehaviour) {
  // Python would switch to big integers; Volga's are 64-bit and say so.
  for (const char* src : {"{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}", "{{ 2 ** 64 }}",
                          "{{ 4294967296 * 4294967296 }}", "{{ [9223372036854775807, 1] | sum }}"}) {
    try {
      jinja::Template::parse(src).render({});
      FAIL() << src;
    } catch (const jinja::TemplateError& e) {
      EXPECT_NE(std::string(e.what()).find("overflow"), std::string::npos) << src;
    }
  }
  EXPECT_EQ(jinja::Template::parse("{{ (-1) ** 1000000000000 }} {{ 2 ** 62 }}").render({}), "1 4611686018427387904");
}

TEST(Jinja, ErrorsCarryLineAndColumn) {
  try {
    jinja::Template::parse("line one\nline two {{ x + }}").render({});
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(e.line(), 2);
    EXPECT_EQ(e.column(), 17);  // the '}}' where an operand was expected
  }
  try {
    jinja::Template::parse("a\nb\n  {{ raise_exception('bad role') }}").render({});
    FAIL();
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(std::string(e.what()).find("bad role"), std::string::npos);
  }
}

TEST(ChatTemplate, RejectsMessagesThatAreNotAList) {
  ChatTemplate t(ChatTemplate::chatml_source(), "", "");
  EXPECT_THROW(t.render(nlohmann::ordered_json::object()), Error);
  EXPECT_THROW(t.render(nlohmann::ordered_json::array({1, 2})), Error);
  std::string out = t.render(nlohmann::ordered_json::parse(R"([{"role":"user","content":"hi"}])"));
  EXPECT_EQ(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}
