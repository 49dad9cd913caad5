// Numeric ranges as grammars over decimal digits.
//
// Bounds are read as exact decimals (an integer as written, a float as its
// shortest round-trip decimal), and a generated number is compared with them
// as a decimal. Generated numbers have at most 15 significant digits, so two
// different ones are different doubles, and one different from a bound's
// shortest decimal is a different double from the bound: a validator that
// compares doubles therefore reaches the same verdict, exclusive bounds
// included. Integers have at most 15 digits, numbers with bounds at most 15
// significant digits and no exponent.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "sampling/json_schema_internal.h"

namespace volga::schema_detail {

namespace {

constexpr int kMaxDigits = 15;
const Decimal kMaxMagnitude{false, std::string(kMaxDigits, '9'), ""};

bool is_zero(const Decimal& d) { return d.int_digits == "0" && d.frac_digits.empty(); }

Decimal normalized(Decimal d) {
  size_t nz = d.int_digits.find_first_not_of('0');
  d.int_digits = nz == std::string::npos ? "0" : d.int_digits.substr(nz);
  while (!d.frac_digits.empty() && d.frac_digits.back() == '0') d.frac_digits.pop_back();
  if (is_zero(d)) d.negative = false;
  return d;
}

int compare_magnitude(const Decimal& a, const Decimal& b) {
  if (a.int_digits.size() != b.int_digits.size()) return a.int_digits.size() < b.int_digits.size() ? -1 : 1;
  if (int c = a.int_digits.compare(b.int_digits)) return c < 0 ? -1 : 1;
  size_t n = std::max(a.frac_digits.size(), b.frac_digits.size());
  for (size_t i = 0; i < n; ++i) {
    char x = i < a.frac_digits.size() ? a.frac_digits[i] : '0';
    char y = i < b.frac_digits.size() ? b.frac_digits[i] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Decimal negated(Decimal d) {
  d.negative = !d.negative;
  return normalized(d);
}

// Non-negative digit strings plus/minus one.
std::string plus_one(std::string s) {
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] != '9') {
      ++s[i];
      return s;
    }
    s[i] = '0';
  }
  return "1" + s;
}

std::string minus_one(std::string s) {  // s > 0
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] != '0') {
      --s[i];
      break;
    }
    s[i] = '9';
  }
  size_t nz = s.find_first_not_of('0');
  return nz == std::string::npos ? "0" : s.substr(nz);
}

// Signed integer decimals plus/minus one.
Decimal add_one(const Decimal& d) {
  if (!d.negative) return Decimal{false, plus_one(d.int_digits), ""};
  return normalized(Decimal{true, minus_one(d.int_digits), ""});
}

Decimal sub_one(const Decimal& d) {
  if (d.negative || is_zero(d)) return normalized(Decimal{true, is_zero(d) ? "1" : plus_one(d.int_digits), ""});
  return normalized(Decimal{false, minus_one(d.int_digits), ""});
}

Decimal ceil_of(const Decimal& d) {
  if (d.frac_digits.empty()) return d;
  return d.negative ? normalized(Decimal{true, d.int_digits, ""}) : Decimal{false, plus_one(d.int_digits), ""};
}

Decimal floor_of(const Decimal& d) {
  if (d.frac_digits.empty()) return d;
  return d.negative ? Decimal{true, plus_one(d.int_digits), ""} : Decimal{false, d.int_digits, ""};
}

std::string digit_class(char lo, char hi) {
  if (lo == hi) return std::string("\"") + lo + "\"";
  if (lo == '0' && hi == '9') return "[0-9]";
  return std::string("[") + lo + "-" + hi + "]";
}

std::string any_digits(size_t n) {
  if (n == 0) return "";
  return n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}";
}

std::string seq(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + " " + b;
}

// Digit strings of equal length n between x and y (x <= y), leading zeros allowed.
std::string same_length_range(const std::string& x, const std::string& y) {
  size_t p = 0;
  while (p < x.size() && x[p] == y[p]) ++p;
  std::string prefix = p ? "\"" + x.substr(0, p) + "\"" : "";
  if (p == x.size()) return prefix;
  std::string xr = x.substr(p + 1), yr = y.substr(p + 1);
  bool x_low = xr.find_first_not_of('0') == std::string::npos;
  bool y_high = yr.find_first_not_of('9') == std::string::npos;
  char lo_digit = x_low ? x[p] : static_cast<char>(x[p] + 1);
  char hi_digit = y_high ? y[p] : static_cast<char>(y[p] - 1);
  std::vector<std::string> alts;
  if (!x_low) alts.push_back(seq(digit_class(x[p], x[p]), atom(same_length_range(xr, std::string(xr.size(), '9')))));
  if (lo_digit <= hi_digit) alts.push_back(seq(digit_class(lo_digit, hi_digit), any_digits(xr.size())));
  if (!y_high) alts.push_back(seq(digit_class(y[p], y[p]), atom(same_length_range(std::string(yr.size(), '0'), yr))));
  return seq(prefix, atom(alternatives(alts)));
}

// ---- fractions ---------------------------------------------------------------

// The fraction digits F after a fixed integer part, constrained by 0.F >= 0.B
// (or >) and 0.F <= 0.C (or <), at most `cap` digits. A side is "done" when
// the constraint is already decided in favour.
struct FracSide {
  bool active = false;  // still comparing
  std::string digits;   // remaining bound digits
  bool strict = false;
};

bool empty_fraction_ok(const FracSide& lo, const FracSide& hi) {
  // F ended: the remaining F digits are zeros.
  bool lo_ok = !lo.active || (lo.digits.empty() && !lo.strict);
  bool hi_ok = !hi.active || !hi.digits.empty() || !hi.strict;
  return lo_ok && hi_ok;
}

// Next side state after digit d; nullopt: dead.
std::optional<FracSide> lower_after(const FracSide& s, char d) {
  if (!s.active) return s;
  if (s.digits.empty()) {  // 0.F >= 0 holds; 0.F > 0 needs a nonzero digit
    if (!s.strict || d > '0') return FracSide{};
    return s;
  }
  if (d > s.digits[0]) return FracSide{};
  if (d < s.digits[0]) return std::nullopt;
  return FracSide{true, s.digits.substr(1), s.strict};
}

std::optional<FracSide> upper_after(const FracSide& s, char d) {
  if (!s.active) return s;
  if (s.digits.empty()) {  // 0.F <= 0 needs zeros only; 0.F < 0 never
    if (s.strict || d > '0') return std::nullopt;
    return s;
  }
  if (d < s.digits[0]) return FracSide{};
  if (d > s.digits[0]) return std::nullopt;
  return FracSide{true, s.digits.substr(1), s.strict};
}

bool same_side(const FracSide& a, const FracSide& b) {
  return a.active == b.active && (!a.active || (a.digits == b.digits && a.strict == b.strict));
}

std::string fraction_digits(const FracSide& lo, const FracSide& hi, size_t cap);

// Nonempty digit strings (at most cap digits) in the state.
std::string fraction_nonempty(const FracSide& lo, const FracSide& hi, size_t cap) {
  if (cap == 0) return "";
  std::vector<std::string> alts;
  char d = '0';
  while (d <= '9') {
    auto l = lower_after(lo, d);
    auto h = upper_after(hi, d);
    char e = d;
    // Group consecutive digits that lead to the same state.
    while (e < '9') {
      auto l2 = lower_after(lo, static_cast<char>(e + 1));
      auto h2 = upper_after(hi, static_cast<char>(e + 1));
      bool same = l.has_value() == l2.has_value() && h.has_value() == h2.has_value() &&
                  (!l || same_side(*l, *l2)) && (!h || same_side(*h, *h2));
      if (!same) break;
      ++e;
    }
    if (l && h) {
      std::string rest = fraction_digits(*l, *h, cap - 1);
      if (rest != "!") alts.push_back(seq(digit_class(d, e), rest));
    }
    d = static_cast<char>(e + 1);
  }
  return alts.empty() ? "" : alternatives(alts);
}

// Digit strings, possibly empty, as an expression ("" = only the empty
// string, "!" = none).
std::string fraction_digits(const FracSide& lo, const FracSide& hi, size_t cap) {
  bool empty_ok = empty_fraction_ok(lo, hi);
  if (!lo.active && !hi.active) return cap == 0 ? "" : "[0-9]{0," + std::to_string(cap) + "}";
  std::string more = fraction_nonempty(lo, hi, cap);
  if (more.empty()) return empty_ok ? "" : "!";
  return empty_ok ? atom(more) + "?" : atom(more);
}

// "." F for a number whose integer part is fixed; "" = no fraction, "!" = none.
std::string fraction_part(const FracSide& lo, const FracSide& hi, size_t cap) {
  bool empty_ok = empty_fraction_ok(lo, hi);
  std::string more = (!lo.active && !hi.active) ? (cap ? "[0-9]{1," + std::to_string(cap) + "}" : "")
                                                : fraction_nonempty(lo, hi, cap);
  if (more.empty()) return empty_ok ? "" : "!";
  std::string dotted = "\".\" " + atom(more);
  return empty_ok ? "( " + dotted + " )?" : dotted;
}

size_t fraction_cap(const std::string& int_digits) {
  return int_digits == "0" ? kMaxDigits : kMaxDigits - std::min<size_t>(kMaxDigits, int_digits.size());
}

// Magnitudes m with P <= m (or <) and m <= Q (or <), P <= Q, both >= 0.
std::vector<std::string> magnitude_range(const Decimal& p, bool p_strict, Decimal q, bool q_strict) {
  if (compare_magnitude(q, kMaxMagnitude) > 0) {
    q = kMaxMagnitude;
    q_strict = false;
  }
  std::vector<std::string> alts;
  if (compare_magnitude(p, q) > 0) return alts;
  FracSide lo{true, p.frac_digits, p_strict}, hi{true, q.frac_digits, q_strict};
  auto add = [&](const std::string& int_part, const FracSide& l, const FracSide& h) {
    std::string f = fraction_part(l, h, fraction_cap(int_part));
    if (f != "!") alts.push_back(seq("\"" + int_part + "\"", f));
  };
  if (p.int_digits == q.int_digits) {
    add(p.int_digits, lo, hi);
    return alts;
  }
  add(p.int_digits, lo, FracSide{});
  std::string first = plus_one(p.int_digits), last = minus_one(q.int_digits);
  if (compare_magnitude(Decimal{false, first, ""}, Decimal{false, last, ""}) <= 0) {
    for (auto& [len, expr] : digit_range_by_length(first, last)) {
      std::string f = fraction_part(FracSide{}, FracSide{}, kMaxDigits - static_cast<size_t>(len));
      alts.push_back(seq(atom(expr), f));
    }
  }
  add(q.int_digits, FracSide{}, hi);
  return alts;
}

// Integer magnitudes in [a, b], 0 <= a <= b.
std::vector<std::string> integer_magnitudes(const std::string& a, const std::string& b) {
  std::vector<std::string> alts;
  for (auto& [len, expr] : digit_range_by_length(a, b)) alts.push_back(expr);
  return alts;
}

}  // namespace

int compare_decimal(const Decimal& a, const Decimal& b) {
  Decimal x = normalized(a), y = normalized(b);
  if (x.negative != y.negative) return x.negative ? -1 : 1;
  int c = compare_magnitude(x, y);
  return x.negative ? -c : c;
}

Decimal decimal_of(const nlohmann::ordered_json& number) {
  if (number.is_number_unsigned()) return Decimal{false, std::to_string(number.get<uint64_t>()), ""};
  if (number.is_number_integer()) {
    int64_t v = number.get<int64_t>();
    std::string digits = std::to_string(v);
    if (v < 0) return Decimal{true, digits.substr(1), ""};
    return Decimal{false, digits, ""};
  }
  double v = number.get<double>();
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf: [-]d[.ddd]e[+-]XX
  std::string s = buf;
  Decimal d;
  size_t i = 0;
  if (s[i] == '-') {
    d.negative = true;
    ++i;
  }
  std::string mantissa;
  for (; i < s.size() && s[i] != 'e'; ++i)
    if (s[i] != '.') mantissa += s[i];
  int exponent = std::atoi(s.c_str() + i + 1);
  // value = 0.mantissa * 10^(exponent + 1)
  int point = exponent + 1;  // digits before the decimal point
  if (point <= 0) {
    d.int_digits = "0";
    d.frac_digits = std::string(static_cast<size_t>(-point), '0') + mantissa;
  } else if (static_cast<size_t>(point) >= mantissa.size()) {
    d.int_digits = mantissa + std::string(static_cast<size_t>(point) - mantissa.size(), '0');
  } else {
    d.int_digits = mantissa.substr(0, static_cast<size_t>(point));
    d.frac_digits = mantissa.substr(static_cast<size_t>(point));
  }
  return normalized(d);
}

NumericBounds read_bounds(const nlohmann::ordered_json& schema, const std::string& where) {
  NumericBounds b;
  auto number = [&](const char* key) -> std::optional<Decimal> {
    auto it = schema.find(key);
    if (it == schema.end()) return std::nullopt;
    if (it->is_boolean())
      fail(std::string("boolean '") + key + "' (draft 4) is not supported; give the bound as a number", where, key);
    if (!it->is_number()) fail(std::string("'") + key + "' must be a number", where, key);
    if (it->is_number_float() && !std::isfinite(it->get<double>()))
      fail(std::string("'") + key + "' must be finite", where, key);
    return decimal_of(*it);
  };
  auto min = number("minimum"), xmin = number("exclusiveMinimum");
  auto max = number("maximum"), xmax = number("exclusiveMaximum");
  b.lo = min;
  if (xmin && (!min || compare_decimal(*xmin, *min) >= 0)) {
    b.lo = xmin;
    b.lo_exclusive = true;
  }
  b.hi = max;
  if (xmax && (!max || compare_decimal(*xmax, *max) <= 0)) {
    b.hi = xmax;
    b.hi_exclusive = true;
  }
  return b;
}

std::vector<std::pair<int, std::string>> digit_range_by_length(const std::string& lo, const std::string& hi) {
  std::vector<std::pair<int, std::string>> out;
  for (size_t len = lo.size(); len <= hi.size(); ++len) {
    std::string a = lo, b = hi;
    if (len != lo.size()) {
      a.assign(len, '0');
      a[0] = '1';
    }
    if (len != hi.size()) b.assign(len, '9');
    out.emplace_back(static_cast<int>(len), same_length_range(a, b));
  }
  return out;
}

std::optional<std::string> integer_range_gbnf(RuleSet& rules, const NumericBounds& b, const std::string& where) {
  Decimal lo = negated(kMaxMagnitude), hi = kMaxMagnitude;
  if (b.lo) {
    Decimal l = b.lo_exclusive ? add_one(floor_of(*b.lo)) : ceil_of(*b.lo);
    if (compare_decimal(l, kMaxMagnitude) > 0)
      fail("'minimum' is beyond the 15-digit integers the grammar generates", where, "minimum");
    if (compare_decimal(l, lo) > 0) lo = l;
  }
  if (b.hi) {
    Decimal h = b.hi_exclusive ? sub_one(ceil_of(*b.hi)) : floor_of(*b.hi);
    if (compare_decimal(h, negated(kMaxMagnitude)) < 0)
      fail("'maximum' is beyond the 15-digit integers the grammar generates", where, "maximum");
    if (compare_decimal(h, hi) < 0) hi = h;
  }
  if (compare_decimal(lo, hi) > 0) return std::nullopt;
  std::vector<std::string> alts;
  if (lo.negative) {  // -hi' .. -lo' magnitudes
    std::string from = hi.negative ? hi.int_digits : "1";
    for (auto& a : integer_magnitudes(from, lo.int_digits)) alts.push_back("\"-\" " + atom(a));
  }
  if (lo.negative || is_zero(lo)) {
    if (!hi.negative) alts.push_back("\"0\"");
  }
  if (!hi.negative && !is_zero(hi)) {
    std::string from = (lo.negative || is_zero(lo)) ? "1" : lo.int_digits;
    for (auto& a : integer_magnitudes(from, hi.int_digits)) alts.push_back(a);
  }
  (void)rules;
  return alternatives(alts);
}

std::optional<std::string> number_range_gbnf(RuleSet& rules, const NumericBounds& b, const std::string& where) {
  (void)rules;
  if (b.lo && b.hi) {
    int c = compare_decimal(*b.lo, *b.hi);
    if (c > 0 || (c == 0 && (b.lo_exclusive || b.hi_exclusive))) return std::nullopt;
  }
  if (b.lo && !b.lo->negative && compare_magnitude(*b.lo, kMaxMagnitude) >= 0)
    fail("'minimum' is beyond the 15-digit numbers the grammar generates", where, "minimum");
  if (b.hi && b.hi->negative && compare_magnitude(*b.hi, kMaxMagnitude) >= 0)
    fail("'maximum' is beyond the 15-digit numbers the grammar generates", where, "maximum");
  std::vector<std::string> alts;
  bool positive_side = !b.hi || !b.hi->negative;
  bool negative_side = !b.lo || b.lo->negative;
  if (positive_side) {  // x >= 0
    Decimal p{false, "0", ""};
    bool p_strict = false;
    if (b.lo && !b.lo->negative) {
      p = *b.lo;
      p_strict = b.lo_exclusive;
    }
    Decimal q = b.hi ? *b.hi : kMaxMagnitude;
    bool q_strict = b.hi ? b.hi_exclusive : false;
    if (!(is_zero(q) && q_strict))
      for (auto& a : magnitude_range(p, p_strict, q, q_strict)) alts.push_back(a);
  }
  if (negative_side) {  // x < 0: magnitude m = -x > 0
    Decimal p{false, "0", ""};
    bool p_strict = true;
    if (b.hi && b.hi->negative) {
      p = negated(*b.hi);
      p_strict = b.hi_exclusive;
    }
    Decimal q = b.lo ? negated(*b.lo) : kMaxMagnitude;
    bool q_strict = b.lo ? b.lo_exclusive : false;
    if (!is_zero(q))
      for (auto& a : magnitude_range(p, p_strict, q, q_strict)) alts.push_back("\"-\" " + atom(a));
  }
  if (alts.empty()) return std::nullopt;
  return alternatives(alts);
}

}  // namespace volga::schema_detail
