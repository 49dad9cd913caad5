// Syntax tree of a parsed Jinja template (internal to src/chat). Expressions
// evaluate to Values, statements append to the output; both are evaluated by
// the Renderer in jinja_eval.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja.h"

namespace volga::jinja {

class Renderer;

struct Pos {
  int line = 1, col = 1;
};

struct Expr {
  Pos pos;
  virtual ~Expr() = default;
  virtual Value eval(Renderer& r) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Literal : Expr {
  Value value;
  Value eval(Renderer& r) const override;
};
struct Name : Expr {
  std::string name;
  Value eval(Renderer& r) const override;
};
struct ListExpr : Expr {
  std::vector<ExprPtr> items;
  bool tuple = false;
  Value eval(Renderer& r) const override;
};
struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Renderer& r) const override;
};
struct GetAttr : Expr {
  ExprPtr object;
  std::string name;
  Value eval(Renderer& r) const override;
};
struct GetItem : Expr {
  ExprPtr object, index;
  Value eval(Renderer& r) const override;
};
struct SliceExpr : Expr {
  ExprPtr object, start, stop, step;  // any of start/stop/step may be null
  Value eval(Renderer& r) const override;
};
struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};
struct CallExpr : Expr {
  ExprPtr callee;
  Args args;
  Value eval(Renderer& r) const override;
};
struct FilterExpr : Expr {
  ExprPtr object;  // null inside {% filter %} blocks (the body is the input)
  std::string name;
  Args args;
  Value eval(Renderer& r) const override;
};
struct TestExpr : Expr {
  ExprPtr object;
  std::string name;
  Args args;
  bool negated = false;
  Value eval(Renderer& r) const override;
};
struct UnaryExpr : Expr {
  std::string op;  // "not", "-", "+"
  ExprPtr operand;
  Value eval(Renderer& r) const override;
};
struct BinaryExpr : Expr {
  std::string op;  // + - * / // % ** ~ == != < > <= >= in "not in" and or
  ExprPtr left, right;
  Value eval(Renderer& r) const override;
};
struct CondExpr : Expr {
  ExprPtr cond, then, otherwise;  // otherwise may be null (-> undefined)
  Value eval(Renderer& r) const override;
};

enum class Flow { Normal, Break, Continue };

struct Stmt {
  Pos pos;
  virtual ~Stmt() = default;
  virtual Flow render(Renderer& r, std::string& out) const = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct TextStmt : Stmt {
  std::string text;
  Flow render(Renderer& r, std::string& out) const override;
};
struct OutputStmt : Stmt {
  ExprPtr expr;
  Flow render(Renderer& r, std::string& out) const override;
};
struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body otherwise;
  Flow render(Renderer& r, std::string& out) const override;
};
struct ForStmt : Stmt {
  std::vector<std::string> targets;
  ExprPtr iterable, filter;  // filter: `for x in xs if cond`
  Body body, otherwise;
  Flow render(Renderer& r, std::string& out) const override;
};
struct SetStmt : Stmt {
  std::vector<std::string> targets;  // `set a, b = ...`
  std::string attr;                  // `set ns.attr = ...` (targets has ns)
  ExprPtr value;                     // null for block set
  Body body;                         // block set: {% set x %}...{% endset %}
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Flow render(Renderer& r, std::string& out) const override;
};
struct MacroStmt : Stmt {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default may be null
  Body body;
  Flow render(Renderer& r, std::string& out) const override;
};
struct CallBlockStmt : Stmt {
  std::vector<std::pair<std::string, ExprPtr>> params;  // caller(params)
  std::unique_ptr<CallExpr> call;
  Body body;
  Flow render(Renderer& r, std::string& out) const override;
};
struct FilterBlockStmt : Stmt {
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
  Flow render(Renderer& r, std::string& out) const override;
};
struct ScopeStmt : Stmt {  // {% with %}, {% generation %}
  std::vector<std::pair<std::string, ExprPtr>> assignments;
  bool new_scope = false;
  Body body;
  Flow render(Renderer& r, std::string& out) const override;
};
struct LoopControlStmt : Stmt {
  Flow flow = Flow::Break;
  Flow render(Renderer& r, std::string& out) const override;
};

struct TemplateBody {
  Body body;
};

// Parser entry point (jinja_parser.cpp).
std::shared_ptr<const TemplateBody> parse_template(const std::string& source);

// Built-ins (jinja_builtins.cpp). Throw volga::Error on misuse; the
// renderer adds the position.
Value apply_filter(Renderer& r, const std::string& name, Value input, CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& input, CallArgs& args);
// Attribute access `obj.name` (methods of str/dict/list, dict keys).
Value get_attribute(const Value& obj, const std::string& name);
// Subscript `obj[key]` (dict key, list/str index), undefined when absent.
Value get_item(const Value& obj, const Value& key);
// Python slicing of lists and strings.
Value slice_value(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step);
// Calls a callable value (built-in functions, macros, methods).
Value call_value(const Value& callee, CallArgs& args);
// Iteration as Python `for x in v`: list items, dict keys, string chars.
std::vector<Value> iterate(const Value& v);
// Global functions every template sees (range, namespace, dict, ...).
void add_builtin_globals(Dict& globals);

}  // namespace volga::jinja
