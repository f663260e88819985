// chat_cli.cpp — `gptoss chat`: an interactive terminal chat in the harmony format on the engine
// of `generate` (host/cli/session.h). Each turn renders the whole conversation and runs only what
// the KV cache does not hold yet (Session::extend); harmony drops the previous turns' analysis
// messages once a final answer follows them (FACTS.md 4.2), which changes the tokens after the
// last user message of the cache, so those are re-read (and the chat says so). The final channel
// streams to stdout; analysis goes to stderr, dimmed on a terminal, with --show-analysis.
// Commands: /reset /save FILE /load FILE /stats /help /exit. Ctrl-C stops the answer (the partial
// reply stays in the conversation); Ctrl-C at the prompt or Ctrl-D exits. Works through a pipe.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "host/cli/cli.h"
#include "host/cli/line_reader.h"
#include "host/cli/session.h"
#include "host/error.h"
#include "host/interrupt.h"
#include "host/text/conversation_json.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

struct ChatOptions {
  ModelOptions model;
  SamplingOptions sampling;
  std::string system;
  std::string developer;
  std::string reasoning = "medium";
  std::string date;
  int num_tokens = 1024;
  bool show_analysis = false;
};

struct TurnStats {
  int prompt_positions = 0;  // positions run for the prompt (new ones plus re-read ones)
  int reused = 0;            // positions of the cache reused
  int generated = 0;
  double ttft_s = 0;
  double decode_s = 0;
};

class Chat {
 public:
  Chat(const ChatOptions& o, Session& session) : o_(o), session_(session) {
    conv_.system.reasoning = tok::parse_reasoning_effort(o.reasoning);
    conv_.system.current_date = o.date;
    if (!o.system.empty()) conv_.system.model_identity = o.system;
    conv_.developer_instructions = o.developer;
    dim_ = isatty(STDERR_FILENO) != 0;
  }

  // Returns the exit code.
  int run() {
    LineReader reader;
    if (reader.interactive()) {
      fmt::print(stderr, "chat: /help for the commands; Ctrl-C stops an answer; Ctrl-D exits\n");
    }
    while (true) {
      const std::optional<std::string> line = reader.read("> ");
      if (!line) break;  // Ctrl-D / end of input
      std::string text = trim(*line);
      if (text.empty()) continue;
      if (text[0] == '/') {
        if (!command(text)) break;
        continue;
      }
      turn(text);
    }
    if (reader.interactive()) fmt::print("\n");
    return 0;
  }

 private:
  static std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
  }

  // Returns false to exit.
  bool command(const std::string& text) {
    const size_t space = text.find(' ');
    const std::string name = text.substr(0, space);
    const std::string arg = space == std::string::npos ? "" : trim(text.substr(space));
    if (name == "/exit" || name == "/quit") return false;
    if (name == "/reset") {
      conv_.messages.clear();
      fmt::print(stderr, "(conversation cleared)\n");
    } else if (name == "/save" || name == "/load") {
      if (arg.empty()) {
        fmt::print(stderr, "{} needs a file name: {} FILE\n", name, name);
        return true;
      }
      try {
        name == "/save" ? save(arg) : load(arg);
      } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        if (!e.hint().empty()) fmt::print(stderr, "hint: {}\n", e.hint());
      }
    } else if (name == "/stats") {
      stats();
    } else if (name == "/help") {
      fmt::print(stderr,
                 "/reset       start a new conversation\n"
                 "/save FILE   write the conversation as JSON messages\n"
                 "/load FILE   continue a conversation saved by /save\n"
                 "/stats       the last turn's TTFT and tokens/s, the context used\n"
                 "/exit        leave (Ctrl-D too)\n");
    } else {
      fmt::print(stderr, "unknown command {} (/help lists them)\n", name);
    }
    return true;
  }

  void save(const std::string& path) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(fmt::format("/save {}: cannot open the file for writing", path));
    out << tok::conversation_to_json({conv_.developer_instructions, conv_.messages});
    out.close();
    if (!out) throw Error(fmt::format("/save {}: write error", path));
    fmt::print(stderr, "(saved {} messages to {})\n", conv_.messages.size(), path);
  }

  void load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("/load {}: cannot open the file", path));
    std::ostringstream s;
    s << in.rdbuf();
    tok::SavedConversation c = tok::conversation_from_json(s.str());
    tok::Conversation next = conv_;
    next.messages = std::move(c.messages);
    if (!c.developer.empty()) next.developer_instructions = c.developer;
    const size_t n = tok::render_conversation(session_.tokenizer(), next).size();
    if (int(n) >= session_.max_context()) {
      throw Error(fmt::format("/load {}: the conversation has {} tokens, the context {}", path, n,
                              session_.max_context()),
                  "raise --max-context");
    }
    conv_ = std::move(next);
    fmt::print(stderr, "(loaded {} messages, {} tokens, from {})\n", conv_.messages.size(), n, path);
  }

  void stats() const {
    fmt::print(stderr, "context: {} of {} positions in the KV cache; {} messages\n",
               session_.cached().size(), session_.max_context(), conv_.messages.size());
    if (!last_) {
      fmt::print(stderr, "no turn yet\n");
      return;
    }
    const TurnStats& t = *last_;
    fmt::print(stderr, "last turn: {} prompt positions run ({} reused from the cache), TTFT {:.3f} s\n",
               t.prompt_positions, t.reused, t.ttft_s);
    if (t.generated > 1) {
      fmt::print(stderr, "           {} tokens generated, {:.2f} tokens/s after the first\n",
                 t.generated, (t.generated - 1) / t.decode_s);
    } else {
      fmt::print(stderr, "           {} tokens generated\n", t.generated);
    }
  }

  void print_analysis(const std::string& channel, const std::string& text) {
    if (!o_.show_analysis || text.empty()) return;
    if (channel != shown_channel_) {
      fmt::print(stderr, "{}[{}]\n", dim_ ? "\x1b[2m" : "", channel.empty() ? "no channel" : channel);
      shown_channel_ = channel;
    }
    fmt::print(stderr, "{}{}{}", dim_ ? "\x1b[2m" : "", text, dim_ ? "\x1b[0m" : "");
  }

  void turn(const std::string& user_text) {
    using Clock = std::chrono::steady_clock;
    tok::Message user;
    user.role = tok::Role::kUser;
    user.content = user_text;
    conv_.messages.push_back(std::move(user));
    const tok::Tokenizer& tokenizer = session_.tokenizer();
    std::vector<int> ids;
    for (tok::TokenId id : tok::render_conversation(tokenizer, conv_)) ids.push_back(int(id));
    if (int(ids.size()) >= session_.max_context()) {
      conv_.messages.pop_back();
      fmt::print(stderr,
                 "the context is full: this turn needs {} tokens, the context holds {} "
                 "(--max-context). /reset starts over (/save FILE keeps the conversation first)\n",
                 ids.size(), session_.max_context());
      return;
    }
    TurnStats stats;
    tok::HarmonyStream harmony(tokenizer);
    std::vector<int> generated;
    bool any_content = false, stopped = false, context_full = false;
    shown_channel_.clear();
    const auto t0 = Clock::now();
    auto t1 = t0;
    {
      const StopSignals signals;
      try {
        Session::ExtendInfo info;
        int next = session_.extend(ids, &info);
        stats.prompt_positions = info.run;
        stats.reused = info.reused;
        if (info.diverged) {
          fmt::print(stderr,
                     "(re-read {} tokens: the conversation as harmony renders it differs from the "
                     "cache after position {}: the previous answer's analysis is dropped, or a "
                     "reply reads back as other tokens)\n",
                     info.run, info.reused);
        }
        t1 = Clock::now();
        stats.ttft_s = std::chrono::duration<double>(t1 - t0).count();
        int pos = int(ids.size());
        while (true) {
          generated.push_back(next);
          const tok::HarmonyDelta d = harmony.push(tok::TokenId(next));
          if (harmony.in_content() || !harmony.messages().empty()) any_content = true;
          if (d.channel == "final") {
            fmt::print("{}", d.text);
            std::fflush(stdout);
          } else {
            print_analysis(d.channel, d.text);
          }
          if (d.done || int(generated.size()) >= o_.num_tokens) break;
          if (pos >= session_.max_context()) {
            context_full = true;
            break;
          }
          next = session_.step(next, pos, true);
          session_.append_cached(generated.back());
          ++pos;
          StopSignals::check("stopping");
        }
      } catch (const Interrupted&) {
        stopped = true;
      }
    }
    harmony.finish();
    stats.generated = int(generated.size());
    stats.decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
    last_ = stats;
    // The reply joins the conversation: the parsed messages, or the raw text of a reply without
    // harmony structure (synthetic weights), printed now with a note.
    if (!any_content && !generated.empty()) {
      std::vector<tok::TokenId> g(generated.begin(), generated.end());
      const std::string text = tokenizer.decode(g);
      fmt::print("{}", text);
      tok::Message reply;
      reply.role = tok::Role::kAssistant;
      reply.content = text;
      reply.channel = "final";
      conv_.messages.push_back(std::move(reply));
      fmt::print("\n");
      std::fflush(stdout);
      fmt::print(stderr, "note: the reply has no harmony structure (no channel or message header; "
                         "expected of synthetic weights), shown as raw text\n");
    } else {
      for (const tok::ParsedMessage& m : harmony.messages()) {
        tok::Message msg{m.role, m.content, m.author_name, m.channel, m.recipient, m.content_type};
        conv_.messages.push_back(std::move(msg));
      }
      fmt::print("\n");
      std::fflush(stdout);
    }
    if (stopped) fmt::print(stderr, "(stopped; the partial answer stays in the conversation)\n");
    if (context_full) {
      fmt::print(stderr,
                 "the context is full ({} positions, --max-context): the answer was cut. /reset "
                 "starts over (/save FILE keeps the conversation first)\n",
                 session_.max_context());
    }
  }

  const ChatOptions& o_;
  Session& session_;
  tok::Conversation conv_;
  std::optional<TurnStats> last_;
  std::string shown_channel_;
  bool dim_ = false;
};

void run_chat(const ChatOptions& o) {
  if (o.num_tokens <= 0) throw Error(fmt::format("-n {}: must be > 0", o.num_tokens));
  sampling::SamplingParams params;
  const uint64_t weights_seed = resolve_seeds(o.model, o.sampling, &params);
  Session session(o.model, params, weights_seed);
  session.tokenizer();  // before the weights: a bad tokenizer fails fast
  tok::parse_reasoning_effort(o.reasoning);
  session.start();
  fmt::print(stderr, "{}: {} experts, {}, backend {}, context {}\n", session.label(),
             o.model.experts, sampling::describe(session.sampling()), session.backend_label(),
             session.max_context());
  Chat chat(o, session);
  chat.run();
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto opts = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "an interactive chat in the harmony format");
  add_model_options(cmd, opts->model);
  add_sampling_options(cmd, opts->sampling, /*default_temp=*/1.0f);
  cmd->add_option("--system", opts->system,
                  "the harmony system message's first line (default: \"You are ChatGPT, ...\")");
  cmd->add_option("--developer", opts->developer, "harmony developer instructions");
  cmd->add_option("--reasoning", opts->reasoning, "harmony reasoning effort: low|medium|high")
      ->capture_default_str();
  cmd->add_option("--date", opts->date, "harmony system message date, YYYY-MM-DD (default: none)");
  cmd->add_option("-n", opts->num_tokens, "most tokens per reply")->capture_default_str();
  cmd->add_flag("--show-analysis", opts->show_analysis,
                "print the analysis channel on stderr (dimmed on a terminal)");
  cmd->callback([opts] { run_chat(*opts); });
}

}  // namespace gptoss::cli
