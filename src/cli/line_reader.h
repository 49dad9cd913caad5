// Reads what the user types in `volga chat`: on a terminal with line editing
// and history from libedit (arrow keys, Ctrl-R search, Home/End, UTF-8 text),
// from a pipe or file as plain lines. Ctrl-C is reported as an interruption
// instead of ending the program, so that the chat decides what it means.
#pragma once

#include <memory>
#include <string>

namespace volga::cli {

// SIGINT handling for an interactive program: while a guard lives, Ctrl-C
// only sets a flag (no SA_RESTART, so blocking reads return). The previous
// handler comes back when the guard goes.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  // True once Ctrl-C was pressed since the last clear().
  static bool pending();
  static void clear();

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

class LineReader {
 public:
  enum class Status { Line, Interrupted, End };
  struct Result {
    Status status = Status::End;
    std::string text;
  };

  // `history_file` empty: history for this session only.
  explicit LineReader(const char* program, std::string history_file);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // True when reading from a terminal (editing and history are on).
  bool interactive() const { return editor_ != nullptr; }
  // One line without its newline; Interrupted when Ctrl-C was pressed (what
  // was typed is discarded); End at end of input (Ctrl-D on an empty line).
  Result read(const std::string& prompt);
  // Adds an entry to the history (and the history file, if any).
  void remember(const std::string& entry);

 private:
  struct Editor;
  std::unique_ptr<Editor> editor_;
  std::string history_file_;
};

}  // namespace volga::cli
