#include "cli/line_reader.h"

#include <histedit.h>
#include <langinfo.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <csignal>
#include <cstring>
#include <iostream>

namespace volga::cli {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) { g_interrupted = 1; }

// libedit's character source: one UTF-8 character from the terminal as a
// wide character. A read interrupted by Ctrl-C ends the line with an error
// (libedit then returns null from el_gets) instead of being retried.
int read_wide_char(EditLine*, wchar_t* out) {
  auto next_byte = [](unsigned char& b) -> int {
    while (true) {
      ssize_t n = ::read(STDIN_FILENO, &b, 1);
      if (n == 1) return 1;
      if (n == 0) return 0;
      if (errno == EINTR && !g_interrupted) continue;
      return -1;
    }
  };
  if (g_interrupted) return -1;  // Ctrl-C came before the line was read
  unsigned char b = 0;
  int r = next_byte(b);
  if (r != 1) return r;
  int follow = b < 0x80 ? 0 : (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : -1;
  if (follow < 0) {  // a stray continuation or invalid lead byte: U+FFFD
    *out = 0xFFFD;
    return 1;
  }
  uint32_t cp = follow == 0 ? b : b & (0x3F >> follow);
  for (int i = 0; i < follow; ++i) {
    r = next_byte(b);
    if (r != 1) return r;
    if ((b & 0xC0) != 0x80) {
      *out = 0xFFFD;
      return 1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *out = static_cast<wchar_t>(cp);
  return 1;
}

const char* prompt_of(EditLine* el) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  return data ? static_cast<const std::string*>(data)->c_str() : "";
}
}  // namespace

struct InterruptGuard::Saved {
  struct sigaction old {};
};

InterruptGuard::InterruptGuard() : saved_(std::make_unique<Saved>()) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
  sigaction(SIGINT, &sa, &saved_->old);
  g_interrupted = 0;
}

InterruptGuard::~InterruptGuard() { sigaction(SIGINT, &saved_->old, nullptr); }

bool InterruptGuard::pending() { return g_interrupted != 0; }
void InterruptGuard::clear() { g_interrupted = 0; }

struct LineReader::Editor {
  EditLine* el = nullptr;
  History* hist = nullptr;
  HistEvent ev{};
  std::string prompt;
  ~Editor() {
    if (el) el_end(el);
    if (hist) history_end(hist);
  }
};

LineReader::LineReader(const char* program, std::string history_file) : history_file_(std::move(history_file)) {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return;
  // libedit measures and edits characters by the locale's encoding; the
  // chat is UTF-8 whatever the user's locale says.
  if (!std::setlocale(LC_CTYPE, "") || std::strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
    std::setlocale(LC_CTYPE, "C.UTF-8");
  auto e = std::make_unique<Editor>();
  e->el = el_init(program, stdin, stdout, stderr);
  e->hist = history_init();
  if (!e->el || !e->hist) return;  // no terminal support: plain lines
  history(e->hist, &e->ev, H_SETSIZE, 1000);
  history(e->hist, &e->ev, H_SETUNIQUE, 1);
  if (!history_file_.empty()) history(e->hist, &e->ev, H_LOAD, history_file_.c_str());
  el_set(e->el, EL_EDITOR, "emacs");
  el_set(e->el, EL_HIST, history, e->hist);
  el_set(e->el, EL_CLIENTDATA, &e->prompt);
  el_set(e->el, EL_PROMPT, prompt_of);
  el_set(e->el, EL_GETCFN, read_wide_char);
  el_source(e->el, nullptr);  // the user's ~/.editrc, if any
  editor_ = std::move(e);
}

LineReader::~LineReader() = default;

LineReader::Result LineReader::read(const std::string& prompt) {
  Result res;
  if (InterruptGuard::pending()) {  // Ctrl-C between two reads
    res.status = Status::Interrupted;
    return res;
  }
  if (!editor_) {
    std::cout << prompt << std::flush;
    if (std::getline(std::cin, res.text)) {
      res.status = Status::Line;
    } else if (InterruptGuard::pending()) {
      std::cin.clear();
      res.status = Status::Interrupted;
    }
    return res;
  }
  editor_->prompt = prompt;
  int count = 0;
  const char* line = el_gets(editor_->el, &count);
  if (InterruptGuard::pending()) {
    el_reset(editor_->el);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    res.status = Status::Interrupted;
    return res;
  }
  if (!line || count <= 0) return res;  // Ctrl-D or end of input
  res.text.assign(line, static_cast<size_t>(count));
  while (!res.text.empty() && (res.text.back() == '\n' || res.text.back() == '\r')) res.text.pop_back();
  res.status = Status::Line;
  return res;
}

void LineReader::remember(const std::string& entry) {
  if (!editor_ || entry.empty()) return;
  history(editor_->hist, &editor_->ev, H_ENTER, entry.c_str());
  if (!history_file_.empty()) history(editor_->hist, &editor_->ev, H_SAVE, history_file_.c_str());
}

}  // namespace volga::cli
