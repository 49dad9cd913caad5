// Lexer and recursive-descent parser for the Jinja2 subset. The grammar and
// operator precedence follow jinja2's parser.py; whitespace control follows
// its lexer with trim_blocks=True and lstrip_blocks=True (Hugging Face's
// settings): a block or comment tag swallows one newline after it, and the
// spaces before it when they start a line; '-' strips all whitespace on that
// side, '+' keeps it.
#include <algorithm>
#include <cstring>
#include <set>

#include "chat/jinja_ast.h"

namespace volga::jinja {
namespace {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // text, name, string value or operator
  int64_t ival = 0;
  double fval = 0;
  Pos pos;
};

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {
    line_starts_.push_back(0);
    for (size_t k = 0; k < src.size(); ++k)
      if (src[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, tag - pos);
      bool line_starting = pos == 0 || src_[pos - 1] == '\n';
      if (tag == src_.size()) {
        emit_text(text, pos);
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : 0;
      if (sign == '-') {
        text.erase(text.find_last_not_of(" \t\r\n\f\v") + 1);
      } else if (sign != '+' && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 || line_starting) {
          bool all_space = l_pos < text.size() &&
                           text.find_first_not_of(" \t\r\f\v", l_pos) == std::string::npos;
          if (all_space) text.erase(l_pos);
        }
      }
      emit_text(text, pos);
      size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) fail("unterminated comment", tag);
        bool strip = end > body && src_[end - 1] == '-';
        bool keep = end > body && src_[end - 1] == '+';
        pos = after_tag_end(end + 2, strip, !keep);
        continue;
      }
      if (kind == '%' && is_raw(body)) {
        pos = lex_raw(tag, body);
        continue;
      }
      bool is_var = kind == '{';
      tokens_.push_back({is_var ? Tok::VarBegin : Tok::BlockBegin, "", 0, 0, at(tag)});
      pos = lex_tag(body, is_var);
    }
    tokens_.push_back({Tok::Eof, "", 0, 0, at(src_.size())});
    return std::move(tokens_);
  }

 private:
  const std::string& src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  Pos at(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }
  [[noreturn]] void fail(const std::string& msg, size_t offset) const {
    Pos p = at(offset);
    throw TemplateError(msg, p.line, p.col);
  }

  size_t find_tag(size_t pos) const {
    for (size_t k = src_.find('{', pos); k != std::string::npos; k = src_.find('{', k + 1))
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#'))
        return k;
    return src_.size();
  }

  void emit_text(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back({Tok::Text, text, 0, 0, at(offset)});
  }

  // Position after a tag's closing marker, consuming the whitespace that
  // '-' (all) or trim_blocks (one newline) removes.
  size_t after_tag_end(size_t pos, bool strip_all, bool trim_newline) const {
    if (strip_all) {
      while (pos < src_.size() && std::strchr(" \t\r\n\f\v", src_[pos])) ++pos;
    } else if (trim_newline) {
      if (pos < src_.size() && src_[pos] == '\n') ++pos;
      else if (pos + 1 < src_.size() && src_[pos] == '\r' && src_[pos + 1] == '\n') pos += 2;
    }
    return pos;
  }

  size_t skip_space(size_t pos) const {
    while (pos < src_.size() && std::strchr(" \t\r\n\f\v", src_[pos])) ++pos;
    return pos;
  }

  bool is_raw(size_t body) const {
    size_t p = skip_space(body);
    return src_.compare(p, 3, "raw") == 0 && p + 3 < src_.size() &&
           !std::isalnum(static_cast<unsigned char>(src_[p + 3])) && src_[p + 3] != '_';
  }

  size_t lex_raw(size_t tag, size_t body) {
    size_t p = skip_space(body) + 3;
    p = skip_space(p);
    bool strip = src_.compare(p, 3, "-%}") == 0;
    if (!strip && src_.compare(p, 2, "%}") != 0) fail("expected '%}' after 'raw'", p);
    p = after_tag_end(p + (strip ? 3 : 2), strip, true);
    for (size_t k = src_.find("{%", p); k != std::string::npos; k = src_.find("{%", k + 2)) {
      size_t q = k + 2;
      bool lstrip = q < src_.size() && src_[q] == '-';
      if (lstrip || (q < src_.size() && src_[q] == '+')) ++q;
      q = skip_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      bool rstrip = src_.compare(q, 3, "-%}") == 0;
      if (!rstrip && src_.compare(q, 2, "%}") != 0) continue;
      std::string text = src_.substr(p, k - p);
      if (lstrip) text.erase(text.find_last_not_of(" \t\r\n\f\v") + 1);
      emit_text(text, p);
      return after_tag_end(q + (rstrip ? 3 : 2), rstrip, true);
    }
    fail("unterminated raw block", tag);
  }

  // Tokenizes the inside of {{ }} or {% %} and returns the position after it.
  size_t lex_tag(size_t pos, bool is_var) {
    int depth = 0;
    const char* close = is_var ? "}}" : "%}";
    while (true) {
      pos = skip_space(pos);
      if (pos >= src_.size()) fail(is_var ? "unterminated '{{'" : "unterminated '{%'", pos);
      if (depth == 0) {
        char c = src_[pos];
        bool signed_end = (c == '-' || c == '+') && src_.compare(pos + 1, 2, close) == 0;
        if (signed_end || src_.compare(pos, 2, close) == 0) {
          tokens_.push_back({is_var ? Tok::VarEnd : Tok::BlockEnd, "", 0, 0, at(pos)});
          size_t end = pos + (signed_end ? 3 : 2);
          return after_tag_end(end, signed_end && c == '-', !is_var && !(signed_end && c == '+'));
        }
      }
      Pos p = at(pos);
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back({Tok::Name, src_.substr(pos, e - pos), 0, 0, p});
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos, p);
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos, p);
      } else {
        static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                    "<", ">", "=", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}"};
        const char* found = nullptr;
        for (const char* op : ops)
          if (src_.compare(pos, std::strlen(op), op) == 0) { found = op; break; }
        if (!found) fail(std::string("unexpected character '") + c + "'", pos);
        std::string op = found;
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail("unbalanced '" + op + "'", pos);
          --depth;
        }
        tokens_.push_back({Tok::Op, op, 0, 0, p});
        pos += op.size();
      }
    }
  }

  size_t lex_number(size_t pos, Pos p) {
    size_t e = pos;
    auto digits = [&] {
      while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t k = e + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        e = k;
        digits();
      }
    }
    std::string text = src_.substr(pos, e - pos);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Token t{is_float ? Tok::Float : Tok::Int, text, 0, 0, p};
    try {
      if (is_float) t.fval = std::stod(text);
      else t.ival = std::stoll(text);
    } catch (const std::exception&) {
      fail("number out of range: " + text, pos);
    }
    tokens_.push_back(t);
    return e;
  }

  size_t lex_string(size_t pos, Pos p) {
    char quote = src_[pos];
    std::string value;
    size_t k = pos + 1;
    while (true) {
      if (k >= src_.size()) fail("unterminated string literal", pos);
      char c = src_[k];
      if (c == quote) break;
      if (c == '\\' && k + 1 < src_.size()) {
        char n = src_[k + 1];
        k += 2;
        switch (n) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case '0': value += '\0'; break;
          case '\\': value += '\\'; break;
          case '\'': value += '\''; break;
          case '"': value += '"'; break;
          case '\n': break;
          case 'u': case 'x': {
            size_t len = n == 'u' ? 4 : 2;
            unsigned cp = 0;
            for (size_t e = 0; e < len; ++e) {
              char h = k + e < src_.size() ? src_[k + e] : '\0';
              if (!std::isxdigit(static_cast<unsigned char>(h))) fail("bad escape in string literal", k);
              cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            k += len;
            append_utf8(value, cp);
            break;
          }
          default: value += '\\'; value += n;
        }
        continue;
      }
      value += c;
      ++k;
    }
    tokens_.push_back({Tok::String, value, 0, 0, p});
    return k + 1;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
    else {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  std::shared_ptr<const TemplateBody> run() {
    auto tb = std::make_shared<TemplateBody>();
    std::string end = parse_body(tb->body, {});
    (void)end;
    return tb;
  }

 private:
  std::vector<Token> t_;
  size_t k_ = 0;
  int depth_ = 0;  // nesting of expressions and blocks, bounded against hostile input

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > 200) p.fail_here("the template nests too deeply (more than 200 levels)");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& peek(size_t ahead = 0) const { return t_[std::min(k_ + ahead, t_.size() - 1)]; }
  const Token& next() { const Token& t = t_[k_]; if (k_ + 1 < t_.size()) ++k_; return t; }
  [[noreturn]] void fail(const std::string& msg, const Token& at) const {
    throw TemplateError(msg, at.pos.line, at.pos.col);
  }
  [[noreturn]] void fail_here(const std::string& msg) const { fail(msg, peek()); }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof: return "end of template";
      case Tok::VarEnd: return "'}}'";
      case Tok::BlockEnd: return "'%}'";
      case Tok::String: return "string";
      case Tok::Int: case Tok::Float: return "number";
      default: return "'" + t.text + "'";
    }
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == Tok::Op && t.text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == Tok::Name && t.text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail_here(std::string("expected '") + op + "', found " + describe(peek()));
    next();
  }
  void expect_name(const char* name) {
    if (!is_name(name)) fail_here(std::string("expected '") + name + "', found " + describe(peek()));
    next();
  }
  std::string expect_identifier() {
    if (peek().type != Tok::Name) fail_here("expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != Tok::BlockEnd) fail_here("expected '%}', found " + describe(peek()));
    next();
  }

  template <class T>
  std::unique_ptr<T> node(const Token& at) {
    auto n = std::make_unique<T>();
    n->pos = at.pos;
    return n;
  }

  // Parses statements until a block tag whose keyword is in `ends`; returns
  // that keyword (the tag's remainder is left for the caller).
  std::string parse_body(Body& body, const std::set<std::string>& ends) {
    while (true) {
      const Token& t = peek();
      if (t.type == Tok::Eof) {
        if (!ends.empty()) {
          std::string expected;
          for (auto& e : ends) expected += (expected.empty() ? "'" : ", '") + e + "'";
          fail("unexpected end of template: a block is not closed (expected " + expected + ")", t);
        }
        return "";
      }
      if (t.type == Tok::Text) {
        auto n = node<TextStmt>(t);
        n->text = next().text;
        body.push_back(std::move(n));
      } else if (t.type == Tok::VarBegin) {
        next();
        auto n = node<OutputStmt>(t);
        n->expr = parse_tuple();
        if (peek().type != Tok::VarEnd) fail_here("expected '}}', found " + describe(peek()));
        next();
        body.push_back(std::move(n));
      } else if (t.type == Tok::BlockBegin) {
        const Token& kw = peek(1);
        if (kw.type != Tok::Name) fail(std::string("expected a statement keyword, found ") + describe(kw), kw);
        if (ends.count(kw.text)) {
          next();
          next();
          return kw.text;
        }
        next();
        body.push_back(parse_statement());
      } else {
        fail_here("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    DepthGuard guard(*this);
    const Token& kw = next();
    const std::string& w = kw.text;
    if (w == "if") return parse_if(kw);
    if (w == "for") return parse_for(kw);
    if (w == "set") return parse_set(kw);
    if (w == "macro") return parse_macro(kw);
    if (w == "call") return parse_call_block(kw);
    if (w == "filter") return parse_filter_block(kw);
    if (w == "with" || w == "generation") {
      auto n = node<ScopeStmt>(kw);
      if (w == "with") {
        n->new_scope = true;
        while (peek().type != Tok::BlockEnd) {
          std::string name = expect_identifier();
          expect_op("=");
          n->assignments.emplace_back(name, parse_expression());
          if (is_op(",")) next();
        }
      }
      expect_block_end();
      parse_body(n->body, {w == "with" ? "endwith" : "endgeneration"});
      expect_block_end();
      return n;
    }
    if (w == "break" || w == "continue") {
      auto n = node<LoopControlStmt>(kw);
      n->flow = w == "break" ? Flow::Break : Flow::Continue;
      expect_block_end();
      return n;
    }
    if (w == "do") {  // {% do expr %}: evaluate, discard
      auto n = node<SetStmt>(kw);
      n->value = parse_tuple();
      expect_block_end();
      return n;
    }
    if (w.rfind("end", 0) == 0 || w == "elif" || w == "else")
      fail("unexpected '" + w + "' without a matching opening block", kw);
    fail("unknown statement '" + w + "'", kw);
  }

  StmtPtr parse_if(const Token& kw) {
    auto n = node<IfStmt>(kw);
    ExprPtr cond = parse_tuple();
    expect_block_end();
    while (true) {
      Body body;
      std::string end = parse_body(body, {"elif", "else", "endif"});
      n->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") {
        cond = parse_tuple();
        expect_block_end();
        continue;
      }
      if (end == "else") {
        expect_block_end();
        parse_body(n->otherwise, {"endif"});
      }
      expect_block_end();
      return n;
    }
  }

  StmtPtr parse_for(const Token& kw) {
    auto n = node<ForStmt>(kw);
    n->targets.push_back(expect_identifier());
    while (is_op(",")) {
      next();
      n->targets.push_back(expect_identifier());
    }
    expect_name("in");
    n->iterable = parse_tuple(/*with_condexpr=*/false);
    if (is_name("if")) {
      next();
      n->filter = parse_expression();
    }
    if (is_name("recursive")) fail_here("recursive loops are not supported");
    expect_block_end();
    std::string end = parse_body(n->body, {"else", "endfor"});
    if (end == "else") {
      expect_block_end();
      parse_body(n->otherwise, {"endfor"});
    }
    expect_block_end();
    return n;
  }

  StmtPtr parse_set(const Token& kw) {
    auto n = node<SetStmt>(kw);
    n->targets.push_back(expect_identifier());
    if (is_op(".")) {
      next();
      n->attr = expect_identifier();
    } else {
      while (is_op(",")) {
        next();
        n->targets.push_back(expect_identifier());
      }
    }
    if (is_op("=")) {
      next();
      n->value = parse_tuple();
      expect_block_end();
      return n;
    }
    if (!n->attr.empty() || n->targets.size() != 1) fail_here("expected '='");
    while (is_op("|")) {
      next();
      n->filters.push_back(parse_filter_call(nullptr));
    }
    expect_block_end();
    parse_body(n->body, {"endset"});
    expect_block_end();
    return n;
  }

  void parse_params(std::vector<std::pair<std::string, ExprPtr>>& params) {
    expect_op("(");
    while (!is_op(")")) {
      std::string name = expect_identifier();
      ExprPtr def;
      if (is_op("=")) {
        next();
        def = parse_expression();
      }
      params.emplace_back(name, std::move(def));
      if (!is_op(")")) expect_op(",");
    }
    next();
  }

  StmtPtr parse_macro(const Token& kw) {
    auto n = node<MacroStmt>(kw);
    n->name = expect_identifier();
    parse_params(n->params);
    expect_block_end();
    parse_body(n->body, {"endmacro"});
    expect_block_end();
    return n;
  }

  StmtPtr parse_call_block(const Token& kw) {
    auto n = node<CallBlockStmt>(kw);
    if (is_op("(")) parse_params(n->params);
    ExprPtr e = parse_expression();
    auto* call = dynamic_cast<CallExpr*>(e.get());
    if (!call) fail("expected a macro call after 'call'", kw);
    e.release();
    n->call.reset(call);
    expect_block_end();
    parse_body(n->body, {"endcall"});
    expect_block_end();
    return n;
  }

  StmtPtr parse_filter_block(const Token& kw) {
    auto n = node<FilterBlockStmt>(kw);
    n->filters.push_back(parse_filter_call(nullptr));
    while (is_op("|")) {
      next();
      n->filters.push_back(parse_filter_call(nullptr));
    }
    expect_block_end();
    parse_body(n->body, {"endfilter"});
    expect_block_end();
    return n;
  }

  // ---- expressions ----

  ExprPtr parse_tuple(bool with_condexpr = true) {
    const Token& start = peek();
    ExprPtr first = with_condexpr ? parse_expression() : parse_or();
    if (!is_op(",")) return first;
    auto list = node<ListExpr>(start);
    list->tuple = true;
    list->items.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().type == Tok::BlockEnd || peek().type == Tok::VarEnd || is_op(")")) break;
      list->items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    return list;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    const Token& start = peek();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      next();
      auto c = node<CondExpr>(start);
      c->then = std::move(e);
      c->cond = parse_or();
      if (is_name("else")) {
        next();
        c->otherwise = parse_expression();
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr l, ExprPtr r) {
    auto b = node<BinaryExpr>(at);
    b->op = std::move(op);
    b->left = std::move(l);
    b->right = std::move(r);
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Token& t = next();
      e = binary(t, "or", std::move(e), parse_and());
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Token& t = next();
      e = binary(t, "and", std::move(e), parse_not());
    }
    return e;
  }
  ExprPtr parse_not() {
    DepthGuard guard(*this);
    if (is_name("not")) {
      const Token& t = next();
      auto u = node<UnaryExpr>(t);
      u->op = "not";
      u->operand = parse_not();
      return u;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    while (true) {
      const Token& t = peek();
      if (t.type == Tok::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == ">" ||
                                t.text == "<=" || t.text == ">=")) {
        std::string op = next().text;
        e = binary(t, op, std::move(e), parse_math1());
      } else if (is_name("in")) {
        next();
        e = binary(t, "in", std::move(e), parse_math1());
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        e = binary(t, "not in", std::move(e), parse_math1());
      } else {
        return e;
      }
    }
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_concat());
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      e = binary(t, "~", std::move(e), parse_math2());
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t, t.text, std::move(e), parse_pow());
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      e = binary(t, "**", std::move(e), parse_unary(true));
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const Token& t = peek();
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      next();
      auto u = node<UnaryExpr>(t);
      u->op = t.text;
      u->operand = parse_unary(false);
      e = std::move(u);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case Tok::Name: {
        next();
        auto lit = node<Literal>(t);
        if (t.text == "true" || t.text == "True") { lit->value = Value::boolean(true); return lit; }
        if (t.text == "false" || t.text == "False") { lit->value = Value::boolean(false); return lit; }
        if (t.text == "none" || t.text == "None") { lit->value = Value::none(); return lit; }
        auto n = node<Name>(t);
        n->name = t.text;
        return n;
      }
      case Tok::String: {
        auto lit = node<Literal>(t);
        std::string s;
        while (peek().type == Tok::String) s += next().text;
        lit->value = Value::string(std::move(s));
        return lit;
      }
      case Tok::Int: case Tok::Float: {
        next();
        auto lit = node<Literal>(t);
        lit->value = t.type == Tok::Int ? Value::integer(t.ival) : Value::number(t.fval);
        return lit;
      }
      case Tok::Op:
        if (t.text == "(") {
          next();
          if (is_op(")")) {  // empty tuple
            next();
            auto l = node<ListExpr>(t);
            l->tuple = true;
            return l;
          }
          ExprPtr e = parse_tuple();
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto l = node<ListExpr>(t);
          while (!is_op("]")) {
            l->items.push_back(parse_expression());
            if (!is_op("]")) expect_op(",");
          }
          next();
          return l;
        }
        if (t.text == "{") {
          next();
          auto d = node<DictExpr>(t);
          while (!is_op("}")) {
            ExprPtr key = parse_expression();
            expect_op(":");
            d->items.emplace_back(std::move(key), parse_expression());
            if (!is_op("}")) expect_op(",");
          }
          next();
          return d;
        }
        break;
      default: break;
    }
    fail_here("unexpected " + describe(t));
  }

  void parse_call_args(Args& args) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == Tok::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        args.keyword.emplace_back(key, parse_expression());
      } else {
        if (!args.keyword.empty()) fail_here("positional argument after keyword argument");
        args.positional.push_back(parse_expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    next();
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Token& t = peek();
      if (is_op(".")) {
        next();
        const Token& name = next();
        if (name.type == Tok::Int) {
          auto g = node<GetItem>(t);
          g->object = std::move(e);
          auto lit = node<Literal>(name);
          lit->value = Value::integer(name.ival);
          g->index = std::move(lit);
          e = std::move(g);
        } else if (name.type == Tok::Name) {
          auto g = node<GetAttr>(t);
          g->object = std::move(e);
          g->name = name.text;
          e = std::move(g);
        } else {
          fail("expected an attribute name after '.'", name);
        }
      } else if (is_op("[")) {
        next();
        e = parse_subscript(t, std::move(e));
      } else if (is_op("(")) {
        auto c = node<CallExpr>(t);
        c->callee = std::move(e);
        parse_call_args(c->args);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(const Token& at, ExprPtr obj) {
    ExprPtr parts[3];
    int colons = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        if (++colons > 2) fail_here("too many ':' in slice");
        next();
        continue;
      }
      if (parts[colons]) fail_here("expected ':' or ']'");
      parts[colons] = parse_expression();
    }
    next();
    if (colons == 0) {
      if (!parts[0]) fail("empty subscript", at);
      auto g = node<GetItem>(at);
      g->object = std::move(obj);
      g->index = std::move(parts[0]);
      return g;
    }
    auto s = node<SliceExpr>(at);
    s->object = std::move(obj);
    s->start = std::move(parts[0]);
    s->stop = std::move(parts[1]);
    s->step = std::move(parts[2]);
    return s;
  }

  std::unique_ptr<FilterExpr> parse_filter_call(ExprPtr input) {
    const Token& t = peek();
    auto f = node<FilterExpr>(t);
    f->object = std::move(input);
    f->name = expect_identifier();
    while (is_op(".")) {  // dotted filter names
      next();
      f->name += "." + expect_identifier();
    }
    if (is_op("(")) parse_call_args(f->args);
    return f;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_filter_call(std::move(e));
      } else if (is_name("is")) {
        const Token& t = next();
        auto test = node<TestExpr>(t);
        if (is_name("not")) {
          next();
          test->negated = true;
        }
        test->name = expect_identifier();
        if (is_op("(")) {
          parse_call_args(test->args);
        } else {
          const Token& a = peek();
          static const std::set<std::string> stop = {"else", "or", "and", "if", "is", "in", "not"};
          bool arg = a.type == Tok::String || a.type == Tok::Int || a.type == Tok::Float ||
                     (a.type == Tok::Name && !stop.count(a.text)) || is_op("[") || is_op("{");
          if (arg) test->args.positional.push_back(parse_postfix(parse_primary()));
        }
        test->object = std::move(e);
        e = std::move(test);
      } else if (is_op("(")) {
        const Token& t = peek();
        auto c = node<CallExpr>(t);
        c->callee = std::move(e);
        parse_call_args(c->args);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

std::shared_ptr<const TemplateBody> parse_template(const std::string& source) {
  Lexer lexer(source);
  Parser parser(lexer.run());
  return parser.run();
}

}  // namespace volga::jinja
