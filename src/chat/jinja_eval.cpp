// Tree-walking evaluation of a parsed template. Scoping follows Jinja2:
// `for`, macros and `with` open a new frame; `if` does not; assignments go
// to the innermost frame, so a `set` inside a loop is invisible after it
// (templates use namespace() for that). Macros close over the frames they
// were defined in.
#include <cmath>

#include "chat/jinja_ast.h"

namespace volga::jinja {

using Frame = std::shared_ptr<Dict>;

class Renderer {
 public:
  explicit Renderer(const Dict& vars) {
    auto globals = std::make_shared<Dict>();
    add_builtin_globals(*globals);
    for (auto& [k, v] : vars.items) globals->set(k, v);
    frames_.push_back(globals);
    frames_.push_back(std::make_shared<Dict>());
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
      if (const Value* v = (*it)->find(name)) return *v;
    return Value::undefined(name);
  }
  void assign(const std::string& name, Value v) { frames_.back()->set(name, std::move(v)); }

  std::vector<Frame>& frames() { return frames_; }

  // Enters a nested call (macro, caller); guards against runaway recursion.
  struct CallGuard {
    Renderer& r;
    std::vector<Frame> saved;
    // `closure` holds weak references: a macro lives in one of those frames,
    // so strong ones would form a cycle and leak.
    CallGuard(Renderer& r_, const std::vector<std::weak_ptr<Dict>>& closure, Pos pos) : r(r_), saved(r_.frames_) {
      if (++r.depth_ > 256) {
        --r.depth_;
        throw TemplateError("macro recursion is too deep (more than 256 levels)", pos.line, pos.col);
      }
      std::vector<Frame> frames;
      for (auto& w : closure) {
        Frame f = w.lock();
        if (!f) {
          --r.depth_;
          throw TemplateError("macro called outside the scope it was defined in", pos.line, pos.col);
        }
        frames.push_back(std::move(f));
      }
      r.frames_ = std::move(frames);
      r.frames_.push_back(std::make_shared<Dict>());
    }
    ~CallGuard() {
      --r.depth_;
      r.frames_ = std::move(saved);
    }
  };
  struct ScopeGuard {
    Renderer& r;
    explicit ScopeGuard(Renderer& r_) : r(r_) { r.frames_.push_back(std::make_shared<Dict>()); }
    ~ScopeGuard() { r.frames_.pop_back(); }
  };

  // Templates come from untrusted model files: rendering has a budget of
  // executed statements and a cap on the output size.
  static constexpr int64_t kMaxSteps = 20'000'000;
  static constexpr size_t kMaxOutput = size_t(64) << 20;

  Flow render_body(const Body& body, std::string& out) {
    for (auto& s : body) {
      if (++steps_ > kMaxSteps)
        throw TemplateError("the template runs too long (more than 20 million steps)", s->pos.line, s->pos.col);
      Flow f = s->render(*this, out);
      if (out.size() > kMaxOutput)
        throw TemplateError("the template output exceeds 64 MiB", s->pos.line, s->pos.col);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  std::vector<Frame> frames_;
  int depth_ = 0;
  int64_t steps_ = 0;
};

namespace {

[[noreturn]] void fail(Pos pos, const std::string& msg) { throw TemplateError(msg, pos.line, pos.col); }

// Runs `fn`, attaching `pos` to any plain volga::Error it throws.
template <class F>
auto at_pos(Pos pos, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& e) {
    fail(pos, e.what());
  }
}

CallArgs eval_args(Renderer& r, const Args& args) {
  CallArgs out;
  for (auto& e : args.positional) out.positional.push_back(e->eval(r));
  for (auto& [k, e] : args.keyword) out.keyword.emplace_back(k, e->eval(r));
  return out;
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined: return "undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Namespace: return "Namespace";
    case Value::Kind::Function: return "function";
  }
  return "?";
}

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    throw Error("'" + (u.s.empty() ? std::string("value") : u.s) + "' is undefined");
  }
  throw Error("unsupported operand types for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  using K = Value::Kind;
  bool ints = (a.kind == K::Int || a.kind == K::Bool) && (b.kind == K::Int || b.kind == K::Bool);
  auto ai = [&] { return a.kind == K::Bool ? int64_t(a.b) : a.i; };
  auto bi = [&] { return b.kind == K::Bool ? int64_t(b.b) : b.i; };
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.s.size() + b.s.size() > Renderer::kMaxOutput) throw Error("string too long (more than 64 MiB)");
      return Value::string(a.s + b.s);
    }
    if (a.is_list() && b.is_list()) {
      Array out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::new_list(std::move(out));
    }
  }
  if (op == "*") {
    const Value* seq = a.is_string() || a.is_list() ? &a : (b.is_string() || b.is_list() ? &b : nullptr);
    const Value* n = seq == &a ? &b : &a;
    if (seq && (n->kind == K::Int || n->kind == K::Bool)) {
      int64_t count = std::max<int64_t>(0, n->kind == K::Bool ? n->b : n->i);
      size_t unit = seq->is_string() ? seq->s.size() : seq->list->size() * 8;
      if (count > 1'000'000 || static_cast<size_t>(count) * unit > Renderer::kMaxOutput)
        throw Error("repetition is too large");
      if (seq->is_string()) {
        std::string out;
        for (int64_t k = 0; k < count; ++k) out += seq->s;
        return Value::string(std::move(out));
      }
      Array out;
      for (int64_t k = 0; k < count; ++k) out.insert(out.end(), seq->list->begin(), seq->list->end());
      return Value::new_list(std::move(out));
    }
  }
  if (!a.is_number() || !b.is_number()) bad_operands(op, a, b);
  // Python integers do not overflow; ours are 64-bit and say so instead.
  if (ints && (op == "+" || op == "-" || op == "*")) {
    int64_t r = 0;
    bool overflow = op == "+" ? __builtin_add_overflow(ai(), bi(), &r)
                  : op == "-" ? __builtin_sub_overflow(ai(), bi(), &r)
                              : __builtin_mul_overflow(ai(), bi(), &r);
    if (overflow) throw Error("integer overflow (values beyond 64 bits are not supported)");
    return Value::integer(r);
  }
  if (op == "+") return Value::number(a.as_double() + b.as_double());
  if (op == "-") return Value::number(a.as_double() - b.as_double());
  if (op == "*") return Value::number(a.as_double() * b.as_double());
  if (op == "/") {
    if (b.as_double() == 0) throw Error("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0) throw Error(op == "%" ? "modulo by zero" : "division by zero");
    if (ints) {
      if (ai() == INT64_MIN && bi() == -1) throw Error("integer overflow (values beyond 64 bits are not supported)");
      return Value::integer(op == "//" ? floor_div(ai(), bi()) : ai() - floor_div(ai(), bi()) * bi());
    }
    double x = a.as_double(), y = b.as_double();
    double q = std::floor(x / y);
    return Value::number(op == "//" ? q : x - q * y);
  }
  if (op == "**") {
    if (ints && bi() >= 0) {
      const int64_t base = ai(), exponent = bi();
      if (base == 0) return Value::integer(exponent == 0 ? 1 : 0);
      if (base == 1) return Value::integer(1);
      if (base == -1) return Value::integer(exponent % 2 ? -1 : 1);
      int64_t result = 1;  // |base| >= 2: overflows within 64 steps
      for (int64_t k = 0; k < exponent; ++k)
        if (__builtin_mul_overflow(result, base, &result))
          throw Error("integer overflow (values beyond 64 bits are not supported)");
      return Value::integer(result);
    }
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  bad_operands(op, a, b);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Value::Kind::String:
      if (!item.is_string()) throw Error("'in <string>' requires a string as left operand");
      return container.s.find(item.s) != std::string::npos;
    case Value::Kind::List:
      for (auto& v : *container.list)
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::Dict: case Value::Kind::Namespace:
      return item.is_string() && container.dict->find(item.s) != nullptr;
    case Value::Kind::Undefined: return false;
    default: throw Error(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

std::optional<int64_t> slice_index(Renderer& r, const ExprPtr& e) {
  if (!e) return std::nullopt;
  Value v = e->eval(r);
  if (v.is_none()) return std::nullopt;
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b ? 1 : 0;
  throw Error("slice indices must be integers or None");
}

}  // namespace

// ---- expressions ----

Value Literal::eval(Renderer&) const {
  // Literal lists/dicts are built fresh by ListExpr/DictExpr; scalars copy.
  return value;
}

Value Name::eval(Renderer& r) const { return r.lookup(name); }

Value ListExpr::eval(Renderer& r) const {
  Array a;
  a.reserve(items.size());
  for (auto& e : items) a.push_back(e->eval(r));
  return tuple ? Value::new_tuple(std::move(a)) : Value::new_list(std::move(a));
}

Value DictExpr::eval(Renderer& r) const {
  Dict d;
  for (auto& [k, v] : items) {
    Value key = k->eval(r);
    if (!key.is_string()) key = Value::string(to_str(key));
    d.set(key.s, v->eval(r));
  }
  return Value::new_dict(std::move(d));
}

Value GetAttr::eval(Renderer& r) const {
  Value obj = object->eval(r);
  return at_pos(pos, [&] { return get_attribute(obj, name); });
}

Value GetItem::eval(Renderer& r) const {
  Value obj = object->eval(r);
  Value key = index->eval(r);
  return at_pos(pos, [&] { return get_item(obj, key); });
}

Value SliceExpr::eval(Renderer& r) const {
  return at_pos(pos, [&] {
    Value obj = object->eval(r);
    auto a = slice_index(r, start), b = slice_index(r, stop), c = slice_index(r, step);
    return slice_value(obj, a, b, c);
  });
}

Value CallExpr::eval(Renderer& r) const {
  Value fn = callee->eval(r);
  CallArgs args = eval_args(r, this->args);
  return at_pos(pos, [&] { return call_value(fn, args); });
}

Value FilterExpr::eval(Renderer& r) const {
  Value input = object->eval(r);
  CallArgs args = eval_args(r, this->args);
  return at_pos(pos, [&] { return apply_filter(r, name, std::move(input), args); });
}

Value TestExpr::eval(Renderer& r) const {
  Value input = object->eval(r);
  CallArgs args = eval_args(r, this->args);
  bool result = at_pos(pos, [&] { return apply_test(r, name, input, args); });
  return Value::boolean(result != negated);
}

Value UnaryExpr::eval(Renderer& r) const {
  Value v = operand->eval(r);
  if (op == "not") return Value::boolean(!v.truthy());
  return at_pos(pos, [&] {
    if (!v.is_number()) throw Error("bad operand type for unary " + op + ": '" + type_name(v) + "'");
    if (op == "+") return v.kind == Value::Kind::Bool ? Value::integer(v.b) : v;
    if (v.kind == Value::Kind::Float) return Value::number(-v.f);
    if (v.kind == Value::Kind::Int && v.i == INT64_MIN) throw Error("integer overflow (values beyond 64 bits are not supported)");
    return Value::integer(-(v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i));
  });
}

Value BinaryExpr::eval(Renderer& r) const {
  if (op == "and") {
    Value a = left->eval(r);
    return a.truthy() ? right->eval(r) : a;
  }
  if (op == "or") {
    Value a = left->eval(r);
    return a.truthy() ? a : right->eval(r);
  }
  Value a = left->eval(r), b = right->eval(r);
  return at_pos(pos, [&] {
    if (op == "~") {
      std::string l = to_str(a), rs = to_str(b);
      if (l.size() + rs.size() > Renderer::kMaxOutput) throw Error("string too long (more than 64 MiB)");
      return Value::string(l + rs);
    }
    if (op == "==") return Value::boolean(equals(a, b));
    if (op == "!=") return Value::boolean(!equals(a, b));
    if (op == "in") return Value::boolean(contains(b, a));
    if (op == "not in") return Value::boolean(!contains(b, a));
    if (op == "<") return Value::boolean(compare(a, b) < 0);
    if (op == ">") return Value::boolean(compare(a, b) > 0);
    if (op == "<=") return Value::boolean(compare(a, b) <= 0);
    if (op == ">=") return Value::boolean(compare(a, b) >= 0);
    return arithmetic(op, a, b);
  });
}

Value CondExpr::eval(Renderer& r) const {
  if (cond->eval(r).truthy()) return then->eval(r);
  return otherwise ? otherwise->eval(r) : Value::undefined();
}

// ---- statements ----

Flow TextStmt::render(Renderer&, std::string& out) const {
  out += text;
  return Flow::Normal;
}

Flow OutputStmt::render(Renderer& r, std::string& out) const {
  out += to_str(expr->eval(r));
  return Flow::Normal;
}

Flow IfStmt::render(Renderer& r, std::string& out) const {
  for (auto& [cond, body] : branches)
    if (cond->eval(r).truthy()) return r.render_body(body, out);
  return r.render_body(otherwise, out);
}

Flow ForStmt::render(Renderer& r, std::string& out) const {
  Value seq = iterable->eval(r);
  std::vector<Value> items = at_pos(pos, [&] { return iterate(seq); });
  Renderer::ScopeGuard scope(r);
  auto bind = [&](const Value& item) {
    if (targets.size() == 1) {
      r.assign(targets[0], item);
      return;
    }
    std::vector<Value> parts = at_pos(pos, [&] { return iterate(item); });
    if (parts.size() != targets.size())
      fail(pos, "cannot unpack " + std::to_string(parts.size()) + " values into " +
                    std::to_string(targets.size()) + " loop variables");
    for (size_t k = 0; k < parts.size(); ++k) r.assign(targets[k], parts[k]);
  };
  if (filter) {
    std::vector<Value> kept;
    for (auto& item : items) {
      bind(item);
      if (filter->eval(r).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) return r.render_body(otherwise, out);
  auto loop = Value::new_namespace();
  int64_t n = static_cast<int64_t>(items.size());
  for (int64_t k = 0; k < n; ++k) {
    Renderer::ScopeGuard iteration(r);  // assignments in the body last one iteration
    Dict& d = *loop.dict;
    d.set("index", Value::integer(k + 1));
    d.set("index0", Value::integer(k));
    d.set("revindex", Value::integer(n - k));
    d.set("revindex0", Value::integer(n - k - 1));
    d.set("first", Value::boolean(k == 0));
    d.set("last", Value::boolean(k == n - 1));
    d.set("length", Value::integer(n));
    d.set("depth", Value::integer(1));
    d.set("depth0", Value::integer(0));
    d.set("previtem", k > 0 ? items[k - 1] : Value::undefined("previtem"));
    d.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("nextitem"));
    d.set("cycle", Value::function([k](CallArgs& a) {
      if (a.positional.empty()) throw Error("loop.cycle() needs at least one argument");
      return a.positional[static_cast<size_t>(k) % a.positional.size()];
    }));
    r.assign("loop", loop);
    bind(items[k]);
    if (r.render_body(body, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

Flow SetStmt::render(Renderer& r, std::string& out) const {
  Value v;
  if (value) {
    v = value->eval(r);
  } else {
    std::string captured;
    r.render_body(body, captured);
    v = Value::string(std::move(captured));
    for (auto& f : filters) {
      CallArgs args = eval_args(r, f->args);
      v = at_pos(f->pos, [&] { return apply_filter(r, f->name, v, args); });
    }
  }
  if (targets.empty()) return Flow::Normal;  // {% do %}
  if (!attr.empty()) {
    Value ns = r.lookup(targets[0]);
    if (ns.kind != Value::Kind::Namespace)
      fail(pos, "cannot assign attribute '" + attr + "' on '" + targets[0] + "', which is not a namespace()");
    ns.dict->set(attr, std::move(v));
    return Flow::Normal;
  }
  if (targets.size() == 1) {
    r.assign(targets[0], std::move(v));
    return Flow::Normal;
  }
  std::vector<Value> parts = at_pos(pos, [&] { return iterate(v); });
  if (parts.size() != targets.size())
    fail(pos, "cannot unpack " + std::to_string(parts.size()) + " values into " +
                  std::to_string(targets.size()) + " variables");
  for (size_t k = 0; k < parts.size(); ++k) r.assign(targets[k], parts[k]);
  return Flow::Normal;
}

namespace {

// Binds call arguments to declared parameters in a fresh frame; extra
// arguments go to `varargs` / `kwargs` as in Jinja.
void bind_params(Renderer& r, const std::vector<std::pair<std::string, ExprPtr>>& params, CallArgs& args,
                 const std::string& what, Pos pos) {
  Array varargs;
  for (size_t k = 0; k < args.positional.size(); ++k) {
    if (k < params.size()) r.assign(params[k].first, args.positional[k]);
    else varargs.push_back(args.positional[k]);
  }
  Dict kwargs;
  for (auto& [key, val] : args.keyword) {
    bool known = key == "caller";
    for (auto& p : params) known |= p.first == key;
    if (known) r.assign(key, val);
    else kwargs.set(key, val);
  }
  for (size_t k = args.positional.size(); k < params.size(); ++k) {
    auto& [name, def] = params[k];
    bool given = false;
    for (auto& kw : args.keyword) given |= kw.first == name;
    if (given) continue;
    r.assign(name, def ? def->eval(r) : Value::undefined(name));
  }
  r.assign("varargs", Value::new_tuple(std::move(varargs)));
  r.assign("kwargs", Value::new_dict(std::move(kwargs)));
  (void)what;
  (void)pos;
}

}  // namespace

Flow MacroStmt::render(Renderer& r, std::string&) const {
  std::vector<std::weak_ptr<Dict>> closure(r.frames().begin(), r.frames().end());
  const MacroStmt* self = this;
  Renderer* rp = &r;
  r.assign(name, Value::function([self, rp, closure](CallArgs& args) {
    Renderer::CallGuard guard(*rp, closure, self->pos);
    bind_params(*rp, self->params, args, "macro '" + self->name + "'", self->pos);
    std::string out;
    rp->render_body(self->body, out);
    return Value::string(std::move(out));
  }));
  return Flow::Normal;
}

Flow CallBlockStmt::render(Renderer& r, std::string& out) const {
  std::vector<std::weak_ptr<Dict>> closure(r.frames().begin(), r.frames().end());
  const CallBlockStmt* self = this;
  Renderer* rp = &r;
  Value caller = Value::function([self, rp, closure](CallArgs& args) {
    Renderer::CallGuard guard(*rp, closure, self->pos);
    bind_params(*rp, self->params, args, "caller", self->pos);
    std::string text;
    rp->render_body(self->body, text);
    return Value::string(std::move(text));
  });
  Value fn = call->callee->eval(r);
  CallArgs args = eval_args(r, call->args);
  args.keyword.emplace_back("caller", caller);
  out += to_str(at_pos(pos, [&] { return call_value(fn, args); }));
  return Flow::Normal;
}

Flow FilterBlockStmt::render(Renderer& r, std::string& out) const {
  std::string captured;
  r.render_body(body, captured);
  Value v = Value::string(std::move(captured));
  for (auto& f : filters) {
    CallArgs args = eval_args(r, f->args);
    v = at_pos(f->pos, [&] { return apply_filter(r, f->name, v, args); });
  }
  out += to_str(v);
  return Flow::Normal;
}

Flow ScopeStmt::render(Renderer& r, std::string& out) const {
  if (!new_scope) return r.render_body(body, out);
  std::vector<std::pair<std::string, Value>> values;
  for (auto& [name, e] : assignments) values.emplace_back(name, e->eval(r));
  Renderer::ScopeGuard scope(r);
  for (auto& [name, v] : values) r.assign(name, v);
  return r.render_body(body, out);
}

Flow LoopControlStmt::render(Renderer&, std::string&) const { return flow; }

// ---- public API ----

// Safety net: a standard-library exception escaping the interpreter is a bug,
// but a template from an untrusted file must still end in a TemplateError.
template <class F>
static auto guarded(F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw TemplateError(std::string("internal error in the template engine: ") + e.what(), 1, 1);
  }
}

Template Template::parse(const std::string& source) {
  Template t;
  t.body_ = guarded([&] { return parse_template(source); });
  return t;
}

std::string Template::render(const Dict& vars) const {
  return guarded([&] {
    Renderer r(vars);
    std::string out;
    r.render_body(body_->body, out);
    return out;
  });
}

}  // namespace volga::jinja
