// A Jinja2 interpreter for the subset that real chat templates use, with the
// environment Hugging Face transformers renders them in: trim_blocks and
// lstrip_blocks on, loop controls (break/continue), the `generation` block,
// `raise_exception`, `strftime_now`, and `tojson` as json.dumps with
// ensure_ascii=False. No autoescaping; values follow Python's semantics.
//
// Template::parse throws TemplateError (with line and column) on syntax
// errors; render throws TemplateError on run-time errors and for
// raise_exception(). A parsed Template is immutable and may be rendered from
// several threads at once.
#pragma once

#include <memory>
#include <string>

#include "chat/jinja_value.h"
#include "util/error.h"

namespace volga::jinja {

class TemplateError : public Error {
 public:
  TemplateError(const std::string& message, int line, int column)
      : Error(message + " (template line " + std::to_string(line) + ", column " +
              std::to_string(column) + ")"),
        line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_, column_;
};

struct TemplateBody;  // parsed statements (jinja_ast.h)

class Template {
 public:
  static Template parse(const std::string& source);
  // Renders with `vars` as the global variables (a Dict value).
  std::string render(const Dict& vars) const;

 private:
  std::shared_ptr<const TemplateBody> body_;
};

}  // namespace volga::jinja
