// From a validated request to tokens and back, for every endpoint
// (chat completions, completions, responses):
//   prepare()      — chat template (with the model's tool-call and reasoning
//                    format), tokenization, context checks, and the grammar
//                    that response_format, json_schema, grammar or a forced
//                    tool choice asks for. Runs on the HTTP thread; bad
//                    input throws ApiError, so the engine never sees it.
//   ResultStream   — the engine's token events -> text (stop sequences,
//                    UTF-8 safe) -> content / reasoning / tool-call deltas.
// Thread-safety: ModelContext is immutable while serving; a ResultStream
// belongs to one request.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_format.h"
#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "sampling/tool_grammar.h"
#include "runtime/rerank.h"
#include "runtime/scheduler.h"
#include "sampling/grammar.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "tokenizer/tokenizer.h"

namespace volga::server {

// What the loaded model serves besides generation (/v1/embeddings, /v1/rerank).
struct EmbedSupport {
  bool generation = true;   // has a language-model head (not an encoder)
  bool embeddings = false;  // /v1/embeddings answers
  bool rerank = false;      // /v1/rerank answers (a cross-encoder or a decoder reranker)
  RerankFormat rerank_format;
  Pooling pooling = Pooling::Unspecified;
  int64_t n_embd = 0;
  int64_t max_tokens = 0;   // longest input
  std::string why_not;      // the 400 message of /v1/embeddings when it does not answer
};

struct ModelContext {
  const Tokenizer* tok = nullptr;
  const ChatTemplate* tmpl = nullptr;
  ChatFormat format;
  std::shared_ptr<const TokenTrie> trie;
  std::vector<int32_t> stop_ids;
  int ctx = 0;
  std::string ctx_note;  // why ctx is below --ctx-size (the KV cache budget), for 400 messages
  Metrics* metrics = nullptr;
  EmbedSupport embed;
};

struct PreparedRequest {
  GenerationRequest gen;
  int64_t prompt_tokens = 0;
  bool in_reasoning = false;    // the prompt opened a reasoning block
  bool parse_tools = false;     // tool-call markup in the output becomes tool_calls
  bool render_special = false;  // control tokens are decoded as text
};

PreparedRequest prepare(const ModelContext& m, const CompletionParams& p);

// Text of the generated tokens, released only when it can no longer be the
// start of a stop sequence.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds decoded text; returns what may be sent now. Sets `stopped` when a
  // stop sequence appeared (the text before it is returned, the rest dropped).
  std::string push(const std::string& text, bool& stopped);
  std::string flush() { return std::exchange(held_, {}); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
};

class ResultStream {
 public:
  ResultStream(const ModelContext& m, const CompletionParams& p, const PreparedRequest& prep,
               std::shared_ptr<RequestHandle> handle);

  // Waits up to `timeout_ms` for the next engine event and appends what it
  // yields to `out` (and its log-probabilities to `logprobs` if not null).
  // Returns false on timeout.
  bool next(std::vector<OutputDelta>& out, Json* logprobs, int timeout_ms);

  bool done() const { return done_; }
  const std::string& error() const { return error_; }
  // The HTTP status of error(): 503 when the service is down (a rank of the
  // MPI job stopped), 500 otherwise.
  int error_status() const { return unavailable_ ? 503 : 500; }
  // The OpenAI error object of error().
  Json error_json() const;
  // "stop", "length", or "tool_calls" when the reply is tool calls.
  std::string finish_reason() const;
  int64_t completion_tokens() const { return completion_tokens_; }
  // Prompt tokens served from the prefix cache.
  int64_t cached_tokens() const { return handle_->cached_tokens(); }
  // Generated tokens that were part of reasoning (the closing tag included).
  int64_t reasoning_tokens() const { return reasoning_tokens_; }
  double seconds() const;
  // The whole reply so far.
  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::vector<ToolCall>& tool_calls() const { return calls_; }
  void cancel() { handle_->cancel(); }

 private:
  void on_event(const TokenEvent& ev, std::vector<OutputDelta>& out, Json* logprobs);
  void emit(std::vector<OutputDelta> deltas, std::vector<OutputDelta>& out);
  void on_text(const std::string& text, bool at_end, std::vector<OutputDelta>& out);
  Json logprob_entry(int32_t id, float logprob) const;

  const ModelContext& m_;
  std::shared_ptr<RequestHandle> handle_;
  StreamDecoder dec_;
  StopMatcher stops_;
  std::unique_ptr<ChatOutputParser> parser_;  // chat only
  std::string finish_reason_, error_;
  bool unavailable_ = false;
  bool done_ = false;
  bool single_call_ = false;  // parallel_tool_calls false
  int64_t completion_tokens_ = 0, reasoning_tokens_ = 0;
  std::string content_, reasoning_;
  std::vector<ToolCall> calls_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

}  // namespace volga::server
