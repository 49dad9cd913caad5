// gbnf_text_until: "any text up to and including the first `stop`" as
// grammar rules, one per state of the string-matching automaton of `stop`
// (state i = the last i code points read are stop's first i).
#include <set>

#include "sampling/grammar.h"
#include "util/utf8.h"

namespace volga {

namespace {

std::string escaped(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, cp < 0x10000 ? "\\u%04X" : "\\U%08X", cp);
  return buf;
}

}  // namespace

std::string gbnf_text_until(const std::string& stop, const std::string& prefix, std::string& rules) {
  if (stop.empty()) throw GrammarError("gbnf_text_until: the stop text is empty");
  const std::vector<uint32_t> s = utf8_code_points(stop);
  const size_t n = s.size();
  // Failure function of the automaton (longest proper border).
  std::vector<size_t> fail(n + 1, 0);
  for (size_t i = 1, k = 0; i < n; ++i) {
    while (k > 0 && s[i] != s[k]) k = fail[k];
    if (s[i] == s[k]) ++k;
    fail[i + 1] = k;
  }
  auto delta = [&](size_t state, uint32_t c) {
    while (state > 0 && s[state] != c) state = fail[state];
    return s[state] == c ? state + 1 : 0;
  };
  const std::set<uint32_t> alphabet(s.begin(), s.end());
  std::string others = "[^";
  for (uint32_t c : alphabet) others += escaped(c);
  others += "]";
  auto name = [&](size_t state) { return prefix + "-" + std::to_string(state); };
  for (size_t state = 0; state < n; ++state) {
    rules += name(state) + " ::= " + others + " " + name(0);
    for (uint32_t c : alphabet) {
      size_t next = delta(state, c);
      rules += " | \"" + escaped(c) + "\"";
      if (next < n) rules += " " + name(next);
    }
    rules += "\n";
  }
  return name(0);
}

}  // namespace volga
