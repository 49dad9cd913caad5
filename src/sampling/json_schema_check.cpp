// A structural reading of GBNF rule bodies, enough to find what makes a
// grammar unusable for constrained decoding: references to undefined rules,
// rules that derive no finite text (a sequence could enter them and never
// finish) and left recursion (the grammar engine refuses it).
#include <functional>

#include "sampling/json_schema_internal.h"

namespace volga::schema_detail {

namespace {

struct Expr;
struct Item {
  enum Kind { Terminal, Empty, Ref, Group } kind = Terminal;
  std::string ref;
  std::shared_ptr<Expr> group;
  bool optional = false;  // may repeat zero times
};
struct Expr {
  std::vector<std::vector<Item>> alts;
};

class BodyParser {
 public:
  explicit BodyParser(const std::string& s) : s_(s) {}

  std::shared_ptr<Expr> parse() {
    auto e = alternatives(0);
    skip();
    if (i_ != s_.size()) throw std::runtime_error("unexpected '" + std::string(1, s_[i_]) + "'");
    return e;
  }

 private:
  void skip() {
    while (i_ < s_.size()) {
      if (std::isspace(static_cast<unsigned char>(s_[i_]))) {
        ++i_;
      } else if (s_[i_] == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  std::shared_ptr<Expr> alternatives(int depth) {
    if (depth > 200) throw std::runtime_error("groups nested too deeply");
    auto e = std::make_shared<Expr>();
    e->alts.push_back(sequence(depth));
    skip();
    while (i_ < s_.size() && s_[i_] == '|') {
      ++i_;
      e->alts.push_back(sequence(depth));
      skip();
    }
    return e;
  }

  std::vector<Item> sequence(int depth) {
    std::vector<Item> items;
    while (true) {
      skip();
      if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')') return items;
      Item it = primary(depth);
      postfix(it);
      items.push_back(std::move(it));
    }
  }

  Item primary(int depth) {
    Item it;
    char c = s_[i_];
    if (c == '"' || c == '[') {
      char close = c == '"' ? '"' : ']';
      size_t start = ++i_;
      while (i_ < s_.size() && s_[i_] != close) i_ += s_[i_] == '\\' ? 2 : 1;
      if (i_ >= s_.size()) throw std::runtime_error("unterminated literal or class");
      it.kind = (c == '"' && i_ == start) ? Item::Empty : Item::Terminal;
      ++i_;
    } else if (c == '.') {
      ++i_;
    } else if (c == '(') {
      ++i_;
      it.kind = Item::Group;
      it.group = alternatives(depth + 1);
      skip();
      if (i_ >= s_.size() || s_[i_] != ')') throw std::runtime_error("missing ')'");
      ++i_;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
      it.kind = Item::Ref;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' || s_[i_] == '_'))
        it.ref += s_[i_++];
    } else {
      throw std::runtime_error("unexpected '" + std::string(1, c) + "'");
    }
    return it;
  }

  void postfix(Item& it) {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '*' || c == '?') {
        it.optional = true;
        ++i_;
      } else if (c == '+') {
        ++i_;
      } else if (c == '{') {
        size_t close = s_.find('}', i_);
        if (close == std::string::npos) throw std::runtime_error("unterminated {m,n}");
        std::string inner = s_.substr(i_ + 1, close - i_ - 1);
        if (inner.empty() || inner[0] == ',' || std::stoul(inner) == 0) it.optional = true;
        i_ = close + 1;
      } else {
        return;
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace

std::string grammar_problem(const std::map<std::string, std::string>& rules, const std::string& start) {
  std::map<std::string, std::shared_ptr<Expr>> parsed;
  std::vector<std::string> todo = {start};
  std::function<void(const Expr&)> collect_refs = [&](const Expr& e) {
    for (const auto& alt : e.alts)
      for (const auto& it : alt) {
        if (it.kind == Item::Ref) todo.push_back(it.ref);
        if (it.kind == Item::Group) collect_refs(*it.group);
      }
  };
  while (!todo.empty()) {
    std::string name = todo.back();
    todo.pop_back();
    if (parsed.count(name)) continue;
    auto r = rules.find(name);
    if (r == rules.end()) return "rule '" + name + "' is used but not defined";
    try {
      parsed[name] = BodyParser(r->second).parse();
    } catch (const std::exception& e) {
      return "rule '" + name + "' does not parse: " + e.what();
    }
    collect_refs(*parsed[name]);
  }
  // Productive (derives some finite text) and nullable (derives ""), as fixpoints.
  std::map<std::string, bool> productive, nullable;
  std::function<bool(const Expr&, std::map<std::string, bool>&, bool)> holds = [&](const Expr& e,
                                                                                 std::map<std::string, bool>& known,
                                                                                 bool want_empty) {
    for (const auto& alt : e.alts) {
      bool all = true;
      for (const auto& it : alt) {
        if (it.optional) continue;
        bool ok = it.kind == Item::Empty || (it.kind == Item::Terminal && !want_empty) ||
                  (it.kind == Item::Ref && known[it.ref]) || (it.kind == Item::Group && holds(*it.group, known, want_empty));
        if (!ok) {
          all = false;
          break;
        }
      }
      if (all) return true;
    }
    return false;
  };
  for (auto* known : {&productive, &nullable}) {
    bool want_empty = known == &nullable;
    for (bool changed = true; changed;) {
      changed = false;
      for (const auto& [name, e] : parsed)
        if (!(*known)[name] && holds(*e, *known, want_empty)) changed = (*known)[name] = true;
    }
  }
  for (const auto& [name, e] : parsed)
    if (!productive[name]) return "rule '" + name + "' can never finish: it requires itself again through $ref (a required property or item that recursively requires itself)";
  // Left edges: rules reachable without consuming text.
  std::map<std::string, std::set<std::string>> left;
  std::function<bool(const Expr&, std::set<std::string>&)> left_refs = [&](const Expr& e, std::set<std::string>& out) {
    bool any_nullable = false;
    for (const auto& alt : e.alts) {
      bool all_nullable = true;
      for (const auto& it : alt) {
        bool it_nullable = it.optional || it.kind == Item::Empty;
        if (it.kind == Item::Ref) {
          out.insert(it.ref);
          it_nullable = it_nullable || nullable[it.ref];
        } else if (it.kind == Item::Group) {
          it_nullable = left_refs(*it.group, out) || it_nullable;
        }
        if (!it_nullable) {
          all_nullable = false;
          break;
        }
      }
      any_nullable = any_nullable || all_nullable;
    }
    return any_nullable;
  };
  for (const auto& [name, e] : parsed) left_refs(*e, left[name]);
  std::map<std::string, int> color;  // 0 new, 1 on the stack, 2 done
  std::function<std::string(const std::string&)> visit = [&](const std::string& name) -> std::string {
    color[name] = 1;
    for (const auto& next : left[name]) {
      if (color[next] == 1) return "rule '" + next + "' is left-recursive (a $ref cycle with no object or array between)";
      if (color[next] == 0) {
        std::string p = visit(next);
        if (!p.empty()) return p;
      }
    }
    color[name] = 2;
    return "";
  };
  for (const auto& [name, e] : parsed)
    if (color[name] == 0) {
      std::string p = visit(name);
      if (!p.empty()) return p;
    }
  return "";
}

}  // namespace volga::schema_detail
