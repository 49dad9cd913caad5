// volga-grammar-sample: random sentences of a grammar (GBNF, or a JSON Schema
// converted by sampling/json_schema.h), one per line as a JSON string.
//
// Each sentence is a random walk over GrammarMatcher::next_bytes(): the walk
// picks an allowed byte at random, with a pull toward ending that grows with
// the length so far (closing bytes " ] } weigh more, stopping where the text
// is complete becomes likelier; when no closing byte may come, bytes after
// which one can come are preferred, and the grammar's literals are tried
// whole). A walk still unfinished after --max-bytes is counted as incomplete
// and not printed (VOLGA_SAMPLE_DEBUG=1 prints its start to stderr). A walk that reaches a state with no
// allowed byte and no complete text (a dead end: a grammar bug), or a
// sentence that is not valid UTF-8, makes the exit status 1.
//
// Exit status: 0 fine, 1 dead end or invalid UTF-8 seen, 2 the schema or
// grammar was refused (the message says why).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <vector>
#include <sstream>

#include "sampling/grammar.h"
#include "sampling/json_schema.h"
#include "util/utf8.h"

namespace {

struct Walk {
  enum Result { Complete, Incomplete, DeadEnd } result;
  std::string text;
};

constexpr char kClosing[] = {'"', ']', '}'};

// In finishing mode, when no closing byte may come next: ASCII bytes after
// which one closing byte (depth 1) or one more byte and a closing byte
// (depth 2) may follow. Empty when none is found.
std::vector<int> toward_closing(volga::GrammarMatcher& m, const std::bitset<256>& next, bool deep) {
  std::vector<int> found;
  for (int depth = 1; depth <= (deep ? 2 : 1) && found.empty(); ++depth) {
    for (int b = 0x20; b < 0x7F; ++b) {
      if (!next[static_cast<size_t>(b)]) continue;
      std::string probe(1, static_cast<char>(b));
      bool ok = false;
      for (int b2 = depth == 1 ? -1 : 0x20; b2 < (depth == 1 ? 0 : 0x7F) && !ok; ++b2) {
        std::string p = probe;
        if (b2 >= 0) {
          p += static_cast<char>(b2);
          if (!m.can_accept_bytes(p)) continue;
        }
        for (char c : kClosing) ok = ok || m.can_accept_bytes(p + c);
      }
      if (ok) found.push_back(b);
    }
  }
  return found;
}


// The literals of a GBNF text ("..." with escapes decoded), as UTF-8: a
// finishing walk tries them whole, which gets it through the fixed parts of
// unanchored patterns ("@", ".com") that a byte-by-byte walk rarely hits.
std::vector<std::string> grammar_literals(const std::string& gbnf) {
  std::vector<std::string> out;
  for (size_t i = 0; i < gbnf.size(); ++i) {
    if (gbnf[i] == '#') {  // comment
      while (i < gbnf.size() && gbnf[i] != '\n') ++i;
      continue;
    }
    if (gbnf[i] == '[') {  // class: skip (a quote inside is no literal)
      for (++i; i < gbnf.size() && gbnf[i] != ']'; ++i)
        if (gbnf[i] == '\\') ++i;
      continue;
    }
    if (gbnf[i] != '"') continue;
    std::string lit;
    for (++i; i < gbnf.size() && gbnf[i] != '"'; ++i) {
      if (gbnf[i] != '\\' || i + 1 >= gbnf.size()) {
        lit += gbnf[i];
        continue;
      }
      char e = gbnf[++i];
      int hex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
      if (hex) {
        uint32_t cp = static_cast<uint32_t>(std::stoul(gbnf.substr(i + 1, static_cast<size_t>(hex)), nullptr, 16));
        i += static_cast<size_t>(hex);
        volga::append_utf8(lit, cp);
      } else {
        lit += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
      }
    }
    if (!lit.empty() && std::find(out.begin(), out.end(), lit) == out.end()) out.push_back(lit);
  }
  return out;
}

Walk random_walk(const std::shared_ptr<const volga::Grammar>& g, const std::vector<std::string>& literals,
                 std::mt19937_64& rng, size_t max_bytes) {
  volga::GrammarMatcher m(g);
  std::string out;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // The length around which the pull toward ending becomes strong.
  const double soft_len = 8.0 * std::pow(2.0, std::floor(unit(rng) * 6));  // 8 .. 256
  size_t step = 0;
  while (out.size() < max_bytes) {
    ++step;
    double pressure = std::min(4.0, static_cast<double>(out.size()) / soft_len);
    bool complete = m.is_complete();
    std::bitset<256> next = m.next_bytes();
    if (next.none()) return {complete ? Walk::Complete : Walk::DeadEnd, out};
    if (complete && unit(rng) < 0.05 + 0.3 * pressure) return {Walk::Complete, out};
    double weights[256] = {}, total = 0;
    // ] and } close something only where few bytes may come (not inside a string).
    const bool structural = next.count() <= 16;
    bool closing_allowed = next['"'] || (structural && (next[']'] || next['}']));
    std::vector<int> hints;
    if (pressure >= 1.0 && !closing_allowed && unit(rng) < 0.5) hints = toward_closing(m, next, step % 8 == 0);
    if (pressure >= 1.0 && !closing_allowed && hints.empty() && !literals.empty() && unit(rng) < 0.3) {
      const std::string& lit = literals[static_cast<size_t>(unit(rng) * static_cast<double>(literals.size()))];
      if (lit.size() > 1 && m.accept_bytes(lit)) {
        out += lit;
        continue;
      }
    }
    if (!hints.empty()) {
      for (int b : hints) weights[b] = 1.0;
      total = static_cast<double>(hints.size());
    } else {
      for (int b = 0; b < 256; ++b) {
        double w = 0;
        if (next[static_cast<size_t>(b)]) {
          w = 1.0;
          if (b == '"' || (structural && (b == ']' || b == '}'))) w += 40.0 * pressure;
          if (b == ' ' || b == '\n' || b == '\t') w = 0.3;
          if (b == ',') w /= 1.0 + pressure;
          if (b >= 0x80 && pressure >= 1.0) w = 0.2;  // fewer multi-byte characters when finishing
        }
        weights[b] = w;
        total += w;
      }
    }
    double pick = unit(rng) * total;
    int chosen = 255;
    for (int b = 0; b < 256; ++b) {
      if (weights[b] == 0) continue;
      chosen = b;
      pick -= weights[b];
      if (pick < 0) break;
    }
    std::string byte(1, static_cast<char>(chosen));
    if (!m.accept_bytes(byte)) return {Walk::DeadEnd, out + byte};  // next_bytes() and accept disagree
    out += byte;
  }
  return {m.is_complete() ? Walk::Complete : Walk::Incomplete, out};
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = volga::utf8_valid_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw volga::Error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string schema_path, grammar_path;
  int n = -1;
  uint64_t seed = 1;
  size_t max_bytes = 4096;
  bool print_grammar = false;
  CLI::App app{"volga-grammar-sample: random sentences of a GBNF grammar or of a JSON Schema, one JSON string per line"};
  auto* schema_opt = app.add_option("--schema", schema_path, "JSON Schema file (converted as response_format does)");
  auto* grammar_opt = app.add_option("--grammar", grammar_path, "GBNF grammar file (root rule: root)");
  schema_opt->excludes(grammar_opt);
  app.add_option("-n", n, "Number of walks (default 10, or 0 with --print-grammar)");
  app.add_option("--seed", seed, "Random seed")->default_val(1);
  app.add_option("--max-bytes", max_bytes, "Give up a walk after this many bytes")->default_val(4096);
  app.add_flag("--print-grammar", print_grammar, "Print the grammar first");
  CLI11_PARSE(app, argc, argv);
  if (schema_path.empty() == grammar_path.empty()) {
    std::fprintf(stderr, "volga-grammar-sample: give --schema FILE or --grammar FILE\n");
    return 2;
  }
  if (n < 0) n = print_grammar ? 0 : 10;
  std::string gbnf;
  std::shared_ptr<const volga::Grammar> grammar;
  try {
    if (!schema_path.empty()) {
      gbnf = volga::json_schema_to_gbnf(nlohmann::ordered_json::parse(read_file(schema_path)));
    } else {
      gbnf = read_file(grammar_path);
    }
    if (print_grammar) std::fputs(gbnf.c_str(), stdout);
    grammar = volga::Grammar::parse(gbnf);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "volga-grammar-sample: error: %s\n", e.what());
    return 2;
  }
  std::mt19937_64 rng(seed);
  const std::vector<std::string> literals = grammar_literals(gbnf);
  int complete = 0, incomplete = 0, dead = 0, bad_utf8 = 0;
  for (int i = 0; i < n; ++i) {
    Walk w = random_walk(grammar, literals, rng, max_bytes);
    if (w.result == Walk::Incomplete) {
      ++incomplete;
      if (std::getenv("VOLGA_SAMPLE_DEBUG"))
        std::fprintf(stderr, "incomplete: %s\n", nlohmann::json(volga::sanitize_utf8(w.text.substr(0, 400))).dump().c_str());
      continue;
    }
    if (w.result == Walk::DeadEnd) {
      ++dead;
      std::fprintf(stderr, "dead end after %zu bytes: %s\n", w.text.size(),
                   nlohmann::json(volga::sanitize_utf8(w.text)).dump().c_str());
      continue;
    }
    if (!valid_utf8(w.text)) {
      ++bad_utf8;
      std::fprintf(stderr, "invalid UTF-8: %s\n", nlohmann::json(volga::sanitize_utf8(w.text)).dump().c_str());
      continue;
    }
    ++complete;
    std::printf("%s\n", nlohmann::json(w.text).dump().c_str());
  }
  std::fprintf(stderr, "walks: %d complete, %d incomplete, %d dead ends, %d invalid UTF-8\n", complete, incomplete,
               dead, bad_utf8);
  return dead || bad_utf8 ? 1 : 0;
}
