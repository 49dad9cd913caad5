#include "chat/output_parser.h"

#include "chat/tool_syntax.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga {

using json = nlohmann::ordered_json;
using markup::Match;

namespace {

constexpr const char* kSpace = " \t\r\n\f\v";

// Bytes at the end of `s` that start a UTF-8 sequence not complete yet.
size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t k = 1; k <= 3 && k <= s.size(); ++k) {
    unsigned char c = static_cast<unsigned char>(s[s.size() - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    return c >= 0xC0 && utf8_incomplete_prefix(s, s.size() - k) ? k : 0;
  }
  return 0;
}

OutputDelta delta(OutputDelta::Kind kind, std::string text, int index = 0) {
  OutputDelta d{kind, {}, 0, {}, {}};
  d.text = std::move(text);
  d.index = index;
  return d;
}

// Longest proper prefix of `literal` that `s` ends with.
size_t tail_prefix_of(std::string_view s, std::string_view literal) {
  for (size_t k = std::min(s.size(), literal.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == literal.substr(0, k)) return k;
  return 0;
}

}  // namespace

ChatOutputParser::ChatOutputParser(const ChatFormat& f, bool in_reasoning, bool parse_tools)
    : ChatOutputParser(f, in_reasoning, parse_tools, json()) {}

ChatOutputParser::ChatOutputParser(const ChatFormat& f, bool in_reasoning, bool parse_tools, const json& tools)
    : f_(f), parse_tools_(parse_tools && f.tools != ToolCallStyle::None), rng_(std::random_device{}()) {
  if (parse_tools_) syntax_ = make_tool_syntax(f_, tools);
  if (f_.reasoning && in_reasoning) {
    mode_ = Mode::Reasoning;
    strip_leading_ = true;
  } else {
    mode_ = f_.reasoning ? Mode::Start : Mode::Content;
  }
}

ChatOutputParser::~ChatOutputParser() = default;
ChatOutputParser::ChatOutputParser(ChatOutputParser&&) noexcept = default;
ChatOutputParser& ChatOutputParser::operator=(ChatOutputParser&&) noexcept = default;

std::vector<OutputDelta> ChatOutputParser::push(std::string_view text) {
  if (finished_) throw Error("ChatOutputParser: push() after finish()");
  out_.clear();
  pending_.append(text);
  while (step(false)) {
  }
  return std::move(out_);
}

std::vector<OutputDelta> ChatOutputParser::finish() {
  out_.clear();
  if (finished_) return {};
  finished_ = true;
  while (step(true)) {
  }
  // Trailing whitespace is kept only in a reply that is nothing but content.
  if (mode_ == Mode::Content && calls_.empty() && !held_ws_.empty()) {
    content_ += held_ws_;
    out_.push_back(delta(OutputDelta::Kind::Content, held_ws_));
  }
  held_ws_.clear();
  return std::move(out_);
}

bool ChatOutputParser::step(bool at_end) {
  switch (mode_) {
    case Mode::Start: return step_start(at_end);
    case Mode::Reasoning: return step_reasoning(at_end);
    case Mode::Content: return step_content(at_end);
    case Mode::Markup: return step_markup(at_end);
  }
  return false;
}

// Before anything: a reasoning block may open (after whitespace).
bool ChatOutputParser::step_start(bool at_end) {
  size_t p = markup::skip_ws(pending_, 0);
  Match m = markup::match_at(pending_, p, f_.think_open);
  if (m == Match::Yes) {
    pending_.erase(0, p + f_.think_open.size());
    mode_ = Mode::Reasoning;
    strip_leading_ = true;
    return true;
  }
  if (m == Match::Partial && !at_end) return false;
  mode_ = Mode::Content;
  return true;
}

bool ChatOutputParser::step_reasoning(bool at_end) {
  size_t close = pending_.find(f_.think_close);
  if (close != std::string::npos) {
    emit_reasoning(std::string_view(pending_).substr(0, close));
    held_ws_.clear();
    pending_.erase(0, close + f_.think_close.size());
    mode_ = Mode::Content;
    strip_leading_ = true;
    return true;
  }
  size_t keep = at_end ? 0 : std::max(tail_prefix_of(pending_, f_.think_close), incomplete_utf8_tail(pending_));
  emit_reasoning(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  if (at_end) held_ws_.clear();
  return false;
}

bool ChatOutputParser::step_content(bool at_end) {
  size_t which = 0;
  size_t at = syntax_ ? find_marker(which) : std::string::npos;
  if (at != std::string::npos) {
    emit_content(std::string_view(pending_).substr(0, at));
    pending_.erase(0, at);
    mode_ = Mode::Markup;
    marker_ = which;
    return true;
  }
  size_t keep = at_end ? 0 : std::max(syntax_ ? marker_prefix_tail() : 0, incomplete_utf8_tail(pending_));
  emit_content(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return false;
}

bool ChatOutputParser::step_markup(bool at_end) {
  MarkupScan scan = syntax_->scan(pending_, marker_, at_end);
  if (scan.status == MarkupScan::Status::NeedMore && !at_end) return false;
  if (scan.status == MarkupScan::Status::Complete) {
    held_ws_.clear();  // whitespace before markup is not content
    pending_.erase(0, scan.length);
    for (ParsedCall& call : scan.calls) emit_call(std::move(call.name), call.arguments);
    if (!scan.calls.empty()) content_since_call_ = false;
    strip_leading_ = true;
  } else {  // not markup after all (or cut off by the end): the marker is content
    std::string marker = syntax_->markers()[marker_].text;
    pending_.erase(0, marker.size());
    emit_content(marker);
  }
  mode_ = Mode::Content;
  return true;
}

bool ChatOutputParser::marker_allowed(size_t marker, size_t pos) const {
  const Marker& m = syntax_->markers()[marker];
  if (!m.only_at_start && !m.only_after_call) return true;
  if (content_since_call_ || (m.only_after_call && calls_.empty())) return false;
  return markup::skip_ws(pending_, 0) >= pos;
}

// Earliest allowed marker in pending_ (the longest one on a tie); npos if none.
size_t ChatOutputParser::find_marker(size_t& which) const {
  size_t best = std::string::npos, best_len = 0;
  const auto& markers = syntax_->markers();
  for (size_t i = 0; i < markers.size(); ++i) {
    bool anchored = markers[i].only_at_start || markers[i].only_after_call;
    size_t at = anchored ? markup::skip_ws(pending_, 0) : pending_.find(markers[i].text);
    if (anchored && markup::match_at(pending_, at, markers[i].text) != Match::Yes) continue;
    if (at == std::string::npos || !marker_allowed(i, at)) continue;
    if (at < best || (at == best && markers[i].text.size() > best_len)) {
      best = at;
      best_len = markers[i].text.size();
      which = i;
    }
  }
  return best;
}

// Bytes at the end of pending_ that may be the start of an allowed marker.
size_t ChatOutputParser::marker_prefix_tail() const {
  size_t keep = 0;
  const auto& markers = syntax_->markers();
  for (size_t i = 0; i < markers.size(); ++i) {
    size_t k = tail_prefix_of(pending_, markers[i].text);
    if (k > keep && marker_allowed(i, pending_.size() - k)) keep = k;
  }
  return keep;
}

void ChatOutputParser::emit_content(std::string_view text) { emit_text(OutputDelta::Kind::Content, text); }

void ChatOutputParser::emit_reasoning(std::string_view text) { emit_text(OutputDelta::Kind::Reasoning, text); }

// Content or reasoning text: leading whitespace dropped after markup,
// trailing whitespace held back until more text shows it is not the end.
void ChatOutputParser::emit_text(OutputDelta::Kind kind, std::string_view text) {
  if (strip_leading_) {
    text.remove_prefix(markup::skip_ws(text, 0));
    if (text.empty()) return;
    strip_leading_ = false;
  }
  size_t last = text.find_last_not_of(kSpace);
  if (last == std::string_view::npos) {
    held_ws_.append(text);
    return;
  }
  std::string piece = held_ws_ + std::string(text.substr(0, last + 1));
  held_ws_ = std::string(text.substr(last + 1));
  if (kind == OutputDelta::Kind::Content) {
    content_ += piece;
    content_since_call_ = true;
  } else {
    reasoning_ += piece;
  }
  if (!out_.empty() && out_.back().kind == kind) out_.back().text += piece;
  else out_.push_back(delta(kind, std::move(piece)));
}

void ChatOutputParser::emit_call(std::string name, const json& arguments) {
  ToolCall call;
  call.id = new_call_id();
  call.name = std::move(name);
  call.arguments = arguments.dump(-1, ' ', false, json::error_handler_t::replace);
  int index = static_cast<int>(calls_.size());
  OutputDelta start = delta(OutputDelta::Kind::ToolCallStart, "", index);
  start.id = call.id;
  start.name = call.name;
  out_.push_back(std::move(start));
  out_.push_back(delta(OutputDelta::Kind::ToolCallArguments, call.arguments, index));
  calls_.push_back(std::move(call));
}

std::string ChatOutputParser::new_call_id() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng_() % 62];
  return id;
}

}  // namespace volga
