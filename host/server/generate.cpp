#include "host/server/generate.h"

#include <chrono>

#include <fmt/format.h>

#include "host/cli/session.h"
#include "host/cli/stop_text.h"
#include "host/error.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::server {

namespace {

// Generated tokens after which a reply that never reached harmony content is taken as raw text.
constexpr int kRawAfter = 32;

}  // namespace

std::vector<int> prompt_ids(cli::Session& session, const Job& job) {
  const tok::Tokenizer& tokenizer = session.tokenizer();
  std::vector<int> ids;
  if (job.endpoint == Endpoint::kCompletions) {
    if (!job.prompt_ids.empty()) {
      ids = job.prompt_ids;
    } else {
      for (tok::TokenId id : tokenizer.encode(job.prompt)) ids.push_back(int(id));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= session.config().vocab_size) {
        throw ApiError(400, fmt::format("'prompt[{}]' {} is outside the model's vocabulary ({} ids)",
                                        i, ids[i], session.config().vocab_size),
                       "prompt");
      }
    }
  } else {
    std::vector<tok::TokenId> r;
    try {
      r = tok::render_conversation(tokenizer, job.conversation);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "messages");
    }
    ids.assign(r.begin(), r.end());
    session.check_ids(ids);
  }
  if (int(ids.size()) >= session.max_context()) {
    throw ApiError(400,
                   fmt::format("this request's prompt has {} tokens; the context holds {} (serve "
                               "--max-context), and at least one position must remain for the "
                               "reply. Shorten the messages",
                               ids.size(), session.max_context()),
                   job.endpoint == Endpoint::kCompletions ? "prompt" : "messages",
                   "invalid_request_error", "context_length_exceeded");
  }
  return ids;
}

struct OutputParser::State {
  State(const tok::Tokenizer& t, const Job& job)
      : tokenizer(t), harmony(t), raw_decoder(t), stop_text(job.stop),
        raw(job.endpoint == Endpoint::kCompletions) {
    for (const char* s : {"<|return|>", "<|endoftext|>", "<|call|>"}) {
      if (auto id = t.special_id(s)) raw_stops.push_back(int(*id));
    }
  }
  const tok::Tokenizer& tokenizer;
  tok::HarmonyStream harmony;
  tok::StreamDecoder raw_decoder;
  cli::StopText stop_text;
  std::vector<int> raw_stops;  // raw text ends at these
  std::vector<int> generated;
  bool raw;
  size_t messages_seen = 0;
};

OutputParser::OutputParser(const tok::Tokenizer& tokenizer, const Job& job)
    : s_(std::make_unique<State>(tokenizer, job)) {}

OutputParser::~OutputParser() = default;

void OutputParser::add_content(const std::string& text, Delta& d) {
  const std::string safe = s_->stop_text.push(text);
  d.content += safe;
  content_ += safe;
  if (s_->stop_text.matched() && finish_.empty()) finish_ = "stop";
}

void OutputParser::take_messages(Delta& d) {
  for (; s_->messages_seen < s_->harmony.messages().size(); ++s_->messages_seen) {
    const tok::ParsedMessage& m = s_->harmony.messages()[s_->messages_seen];
    if (m.recipient.starts_with("functions.")) {
      ToolCall call{new_id("call_"), m.recipient.substr(10), m.content};
      d.tool_calls.push_back(call);
      calls_.push_back(std::move(call));
    }
  }
}

Delta OutputParser::push(int id) {
  State& s = *s_;
  s.generated.push_back(id);
  Delta d;
  if (s.raw) {
    if (std::find(s.raw_stops.begin(), s.raw_stops.end(), id) != s.raw_stops.end()) {
      finish_ = "stop";
    } else {
      add_content(s.raw_decoder.push(tok::TokenId(id)), d);
    }
    return d;
  }
  const tok::HarmonyDelta hd = s.harmony.push(tok::TokenId(id));
  if (!hd.text.empty()) {
    if (hd.channel == "analysis") {
      d.reasoning = hd.text;
      reasoning_ += hd.text;
    } else if (hd.channel == "commentary" && !s.harmony.current().recipient.empty()) {
      // a tool call's arguments: returned whole when the call completes
    } else {
      add_content(hd.text, d);
    }
  }
  if (hd.done) s.harmony.finish();
  take_messages(d);
  if (hd.done && finish_.empty()) {
    finish_ = s.harmony.stop_reason() == tok::StopReason::kCall && !calls_.empty() ? "tool_calls" : "stop";
  }
  // No harmony structure after kRawAfter tokens: the reply is raw text from its start.
  const bool any_content = s.harmony.in_content() || !s.harmony.messages().empty();
  if (!any_content && !hd.done && int(s.generated.size()) >= kRawAfter) {
    s.raw = true;
    std::string text;
    for (int t : s.generated) s.raw_decoder.push(tok::TokenId(t), text);
    add_content(text, d);
  }
  return d;
}

Delta OutputParser::finish() {
  State& s = *s_;
  Delta tail;
  if (!s.raw && s.harmony.messages().empty() && !s.harmony.in_content() && !s.harmony.done()) {
    // A short reply without harmony structure: raw text.
    std::string text;
    for (int t : s.generated) s.raw_decoder.push(tok::TokenId(t), text);
    s.raw = true;
    add_content(text, tail);
  } else if (!s.raw && !s.harmony.done()) {
    s.harmony.finish();
    take_messages(tail);
  }
  if (s.raw) {
    std::string rest;
    s.raw_decoder.flush(rest);
    if (!rest.empty()) add_content(rest, tail);
  }
  if (!s.stop_text.matched()) {
    const std::string held = s.stop_text.flush();
    tail.content += held;
    content_ += held;
  }
  return tail;
}

Outcome generate(cli::Session& session, const Job& job, const std::vector<int>& ids,
                 const std::function<bool(const Delta&)>& on_delta) {
  using Clock = std::chrono::steady_clock;
  session.set_sampling(job.sampling);
  OutputParser parser(session.tokenizer(), job);
  auto emit = [&](const Delta& d) { return on_delta(d); };
  Outcome out;
  out.prompt_tokens = int(ids.size());
  const auto t0 = Clock::now();
  cli::Session::ExtendInfo info;
  int next = session.extend(ids, &info);
  out.cached_tokens = info.reused;
  out.prefill_run = info.run;
  const auto t1 = Clock::now();
  out.ttft_s = std::chrono::duration<double>(t1 - t0).count();
  int pos = int(ids.size());
  bool client_gone = false;
  int generated = 0;
  while (true) {
    ++generated;
    if (!emit(parser.push(next))) {
      client_gone = true;
      break;
    }
    if (!parser.finish_reason().empty()) break;
    if (generated >= job.max_tokens || pos >= session.max_context()) {
      parser.set_finish_reason("length");
      break;
    }
    const int token = next;
    next = session.step(token, pos, true);
    session.append_cached(token);
    ++pos;
  }
  out.completion_tokens = generated;
  out.decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  if (!client_gone) {
    const Delta tail = parser.finish();
    if (!emit(tail)) client_gone = true;
  }
  out.content = parser.content();
  out.reasoning = parser.reasoning();
  out.tool_calls = parser.tool_calls();
  out.finish_reason = client_gone ? "" : parser.finish_reason();
  return out;
}

}  // namespace gptoss::server
