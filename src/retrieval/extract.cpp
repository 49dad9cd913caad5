// Text extraction: see extract.h.
#include "retrieval/extract.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "util/error.h"
#include "util/utf8.h"

extern char** environ;

namespace volga::retrieval {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// Collapses runs of spaces, trims spaces around line breaks and keeps at most
// one blank line between paragraphs.
std::string tidy_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  int newlines = 0;
  bool space = false;
  for (char c : s) {
    if (c == '\n') {
      ++newlines;
      space = false;
    } else if (is_space(c)) {
      space = true;
    } else {
      if (!out.empty()) {
        if (newlines) out.append(std::min(newlines, 2), '\n');
        else if (space) out += ' ';
      }
      newlines = 0;
      space = false;
      out += c;
    }
  }
  return out;
}

const std::unordered_map<std::string, uint32_t>& named_entities() {
  static const std::unordered_map<std::string, uint32_t> table = {
      {"amp", '&'},     {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
      {"nbsp", ' '},    {"ndash", 0x2013}, {"mdash", 0x2014}, {"laquo", 0xAB},   {"raquo", 0xBB},
      {"hellip", 0x2026}, {"copy", 0xA9},  {"reg", 0xAE},     {"trade", 0x2122}, {"lsquo", 0x2018},
      {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bdquo", 0x201E}, {"bull", 0x2022},
      {"middot", 0xB7}, {"euro", 0x20AC},  {"deg", 0xB0},     {"times", 0xD7},   {"shy", 0xAD},
      {"sect", 0xA7},   {"para", 0xB6},    {"thinsp", 0x2009}, {"ensp", 0x2002}, {"emsp", 0x2003}};
  return table;
}

// Decodes the entity starting at s[i] == '&' into `out`; returns the bytes
// consumed (0: not an entity, the '&' stays as it is).
size_t decode_entity(std::string_view s, size_t i, std::string& out) {
  const size_t semi = s.find(';', i);
  if (semi == std::string_view::npos || semi - i > 12 || semi == i + 1) return 0;
  const std::string_view body = s.substr(i + 1, semi - i - 1);
  uint32_t cp = 0;
  if (body[0] == '#') {
    const bool hex = body.size() > 1 && (body[1] == 'x' || body[1] == 'X');
    const std::string_view digits = body.substr(hex ? 2 : 1);
    if (digits.empty()) return 0;
    for (char c : digits) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : hex && std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10
                                                                           : -1;
      if (d < 0) return 0;
      cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      if (cp > 0x10FFFF) return 0;
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  } else {
    auto it = named_entities().find(std::string(body));
    if (it == named_entities().end()) return 0;
    cp = it->second;
  }
  if (cp != 0xAD) append_utf8(out, cp);
  return semi - i + 1;
}

// The element's name of the tag starting at s[i] == '<' (lowercase, without
// '/'), and whether it closes.
std::string tag_name(std::string_view s, size_t i, bool& closing) {
  size_t j = i + 1;
  closing = j < s.size() && s[j] == '/';
  if (closing) ++j;
  size_t k = j;
  while (k < s.size() && (std::isalnum(static_cast<unsigned char>(s[k])) || s[k] == '-')) ++k;
  return lower(s.substr(j, k - j));
}

// "\n\n" after elements that end a paragraph, "\n" after those that end a line.
const char* block_break(const std::string& name) {
  static const char* paragraph[] = {"p", "div", "section", "article", "header", "footer", "title", "blockquote",
                                    "table", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "main", "nav",
                                    "aside", "figure", "dl", "hr", "body", "html"};
  static const char* line[] = {"br", "li", "tr", "dd", "dt", "td", "th", "caption", "option"};
  for (const char* p : paragraph)
    if (name == p) return "\n\n";
  for (const char* l : line)
    if (name == l) return name == "td" || name == "th" ? " " : "\n";
  return nullptr;
}

// Position after the element whose contents are not text (script, style...):
// after its closing tag, or the end when it never closes.
size_t skip_raw_element(std::string_view s, size_t from, const std::string& name) {
  const std::string lowered = lower(s.substr(from));
  const size_t close = lowered.find("</" + name);
  if (close == std::string::npos) return s.size();
  const size_t gt = s.find('>', from + close);
  return gt == std::string_view::npos ? s.size() : gt + 1;
}

}  // namespace

DocKind kind_of_path(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return DocKind::Unknown;
  const std::string ext = lower(path.substr(dot + 1));
  if (ext == "txt" || ext == "text" || ext == "rst") return DocKind::Text;
  if (ext == "md" || ext == "markdown") return DocKind::Markdown;
  if (ext == "html" || ext == "htm" || ext == "xhtml") return DocKind::Html;
  if (ext == "pdf") return DocKind::Pdf;
  return DocKind::Unknown;
}

std::string html_to_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '&') {
      const size_t used = decode_entity(s, i, out);
      if (used) {
        i += used;
        continue;
      }
      out += c;
      ++i;
    } else if (c == '<' && s.substr(i, 4) == "<!--") {
      const size_t end = s.find("-->", i + 4);
      i = end == std::string_view::npos ? s.size() : end + 3;
    } else if (c == '<' && i + 1 < s.size() &&
               (std::isalpha(static_cast<unsigned char>(s[i + 1])) || s[i + 1] == '/' || s[i + 1] == '!' ||
                s[i + 1] == '?')) {
      bool closing = false;
      const std::string name = tag_name(s, i, closing);
      const size_t gt = s.find('>', i);
      i = gt == std::string_view::npos ? s.size() : gt + 1;
      if (!closing && (name == "script" || name == "style" || name == "noscript" || name == "template" ||
                       name == "svg")) {
        i = skip_raw_element(s, i, name);
        continue;
      }
      if (const char* br = block_break(name)) out += br;
    } else {
      out += c;
      ++i;
    }
  }
  return tidy_whitespace(out);
}

std::string markdown_to_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool line_start = true;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (line_start && c == '#') {  // heading marks
      while (i < s.size() && s[i] == '#') ++i;
      line_start = false;
      continue;
    }
    if (s.substr(i, 4) == "<!--") {
      const size_t end = s.find("-->", i + 4);
      i = end == std::string_view::npos ? s.size() : end + 3;
      continue;
    }
    if (c == '!' && i + 1 < s.size() && s[i + 1] == '[') {  // image: keep its alt text
      ++i;
      continue;
    }
    if (c == ']' && i + 1 < s.size() && s[i + 1] == '(') {  // link target dropped
      const size_t close = s.find(')', i + 2);
      const size_t nl = s.find('\n', i + 2);
      if (close != std::string_view::npos && close < nl) {
        i = close + 1;
        continue;
      }
    }
    if (c == '[' || c == ']' || c == '*' || c == '_' || c == '`') {
      // Markup, unless inside a word (snake_case names keep their underscores).
      const bool inner = c == '_' && i > 0 && i + 1 < s.size() && std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
                         std::isalnum(static_cast<unsigned char>(s[i + 1]));
      if (!inner) {
        ++i;
        continue;
      }
    }
    out += c;
    line_start = c == '\n';
    ++i;
  }
  return tidy_whitespace(out);
}

std::string pdf_to_text(const std::string& path) {
  int fds[2];
  if (pipe(fds) != 0) throw Error("could not start pdftotext: " + std::string(std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = {"pdftotext", "-q", "-enc", "UTF-8", path, "-"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "pdftotext", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    throw Error("could not run pdftotext (" + std::string(std::strerror(rc)) +
                "); install poppler-utils to index PDF files");
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) text.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("pdftotext could not read it (exit status " +
                std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
                "): not a PDF, damaged or encrypted");
  std::replace(text.begin(), text.end(), '\f', '\n');
  return tidy_whitespace(sanitize_utf8(text));
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read '" + path + "'");
  return ss.str();
}

std::string extract_text(const std::string& path, DocKind kind) {
  if (kind == DocKind::Pdf) return pdf_to_text(path);
  std::string bytes = read_file_bytes(path);
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xEF\xBB\xBF") == 0) bytes.erase(0, 3);  // byte order mark
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = utf8_valid_sequence(bytes, i);
    if (n == 0 || bytes[i] == '\0')
      throw Error("'" + path + "' is not UTF-8 text (bad byte at offset " + std::to_string(i) + ")");
    i += n;
  }
  if (kind == DocKind::Html) return html_to_text(bytes);
  if (kind == DocKind::Markdown) return markdown_to_text(bytes);
  return tidy_whitespace(bytes);
}

std::string content_hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace volga::retrieval
