// generate.h — one request's generation on the engine (host/cli/session.h), for every endpoint of
// `gptoss serve`: the prompt through Session::extend (the longest prefix the KV cache already
// holds is reused), then tokens until <|return|> (stop), <|call|> (tool_calls), a stop string
// (stop), max_tokens or the context's end (length), or until the consumer returns false (the client
// went away). Harmony output is split into reasoning (analysis), content (final, and commentary
// without a recipient) and tool calls (commentary to functions.NAME). A reply without harmony
// structure (synthetic weights) is returned as raw content text.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/server/openai.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
class Session;
}

namespace gptoss::server {

// What one step added, for streaming.
struct Delta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;  // completed calls
};

struct Outcome {
  std::string reasoning, content;
  std::vector<ToolCall> tool_calls;
  std::string finish_reason;  // "stop", "length", "tool_calls"; empty: the client went away
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prompt positions reused from the KV cache
  int prefill_run = 0;    // prompt positions run
  double ttft_s = 0;      // from the start on the engine to the first token
  double decode_s = 0;    // from the first token to the last
};

// Turns generated ids into deltas: harmony (chat, responses) or raw text (completions, and a
// reply that shows no harmony structure within its first 32 tokens), with the stop strings.
class OutputParser {
 public:
  OutputParser(const tok::Tokenizer& tokenizer, const Job& job);
  ~OutputParser();
  // The delta of one generated id; finish_reason() is set once generation must stop.
  Delta push(int id);
  // The end of generation (token limit, or after a stop): what is still held back.
  Delta finish();
  const std::string& finish_reason() const { return finish_; }
  void set_finish_reason(std::string r) { finish_ = std::move(r); }
  // Totals so far.
  const std::string& content() const { return content_; }
  const std::string& reasoning() const { return reasoning_; }
  const std::vector<ToolCall>& tool_calls() const { return calls_; }

 private:
  void add_content(const std::string& text, Delta& d);
  void take_messages(Delta& d);

  struct State;
  std::unique_ptr<State> s_;
  std::string finish_, content_, reasoning_;
  std::vector<ToolCall> calls_;
};

// The prompt ids of `job` (harmony rendering, or the raw prompt's encoding), checked against the
// vocabulary and the context: ApiError 400 (context_length_exceeded) naming both numbers.
std::vector<int> prompt_ids(cli::Session& session, const Job& job);

// Runs `job` (its prompt `ids`) on `session`; `on_delta` gets each generated token's delta, empty
// ones too (a stream writes a keep-alive then, which is how a client gone is seen: return false
// to stop). Sets the session's sampling to the job's.
Outcome generate(cli::Session& session, const Job& job, const std::vector<int>& ids,
                 const std::function<bool(const Delta&)>& on_delta);

}  // namespace gptoss::server
