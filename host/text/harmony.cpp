// harmony.cpp — harmony rendering (conversation -> ids) and the streaming output parser.
// Mirrors openai/harmony's renderer piece by piece: each text between two special tokens is
// encoded on its own, so the ids match harmony's exactly (FACTS.md 4.2 test).
#include "host/text/harmony.h"

#include <algorithm>

#include <fmt/format.h>

#include "host/error.h"

namespace gptoss::tok {

std::string_view to_string(ReasoningEffort effort) {
  switch (effort) {
    case ReasoningEffort::kLow: return "low";
    case ReasoningEffort::kMedium: return "medium";
    case ReasoningEffort::kHigh: return "high";
  }
  return "medium";
}

ReasoningEffort parse_reasoning_effort(std::string_view text) {
  if (text == "low") return ReasoningEffort::kLow;
  if (text == "medium") return ReasoningEffort::kMedium;
  if (text == "high") return ReasoningEffort::kHigh;
  throw Error(fmt::format("unknown reasoning effort '{}'", text), "use low, medium or high");
}

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kDeveloper: return "developer";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
  }
  return "user";
}

std::optional<Role> parse_role(std::string_view text) {
  for (Role r : {Role::kSystem, Role::kDeveloper, Role::kUser, Role::kAssistant, Role::kTool}) {
    if (text == to_string(r)) return r;
  }
  return std::nullopt;
}

namespace {

constexpr std::string_view kConstrainText = "<|constrain|>";
constexpr std::string_view kChannelText = "<|channel|>";

// A rendered conversation before tokenization: specials and the texts between them.
struct Segment {
  TokenId special = 0;  // 0: a text segment
  std::string text;
};

void add_special(std::vector<Segment>& out, TokenId id) { out.push_back({id, {}}); }
void add_text(std::vector<Segment>& out, std::string text) {
  if (!text.empty()) out.push_back({0, std::move(text)});
}

std::string system_text(const SystemOptions& sys) {
  std::vector<std::string> top;
  if (!sys.model_identity.empty()) top.push_back(sys.model_identity);
  if (!sys.knowledge_cutoff.empty()) top.push_back("Knowledge cutoff: " + sys.knowledge_cutoff);
  if (!sys.current_date.empty()) top.push_back("Current date: " + sys.current_date);
  std::vector<std::string> sections;
  if (!top.empty()) sections.push_back(fmt::format("{}", fmt::join(top, "\n")));
  sections.push_back(fmt::format("Reasoning: {}", to_string(sys.reasoning)));
  std::string channels =
      "# Valid channels: analysis, commentary, final. Channel must be included for every "
      "message.";
  if (sys.function_tools) {
    channels += "\nCalls to these tools must go to the commentary channel: 'functions'.";
  }
  sections.push_back(std::move(channels));
  return fmt::format("{}", fmt::join(sections, "\n\n"));
}

// One message as harmony's Render<Message>: <|start|>role[ to=R][<|channel|>C][ type]<|message|>
// content <|end|> (or <|call|> for an assistant message with a recipient).
void render_message(std::vector<Segment>& out, const Message& m, const std::string& content) {
  add_special(out, kStart);
  if (m.role == Role::kTool) {
    if (m.author_name.empty()) {
      throw Error("a tool message needs the tool's name (author_name)",
                  "set it to the function that produced the result, e.g. functions.get_weather");
    }
    add_text(out, m.author_name);
  } else {
    add_text(out, std::string(to_string(m.role)));
    if (!m.author_name.empty()) add_text(out, ":" + m.author_name);
  }
  if (!m.recipient.empty() && m.recipient != "all") add_text(out, " to=" + m.recipient);
  if (!m.channel.empty()) {
    add_special(out, kChannel);
    add_text(out, m.channel);
  }
  if (!m.content_type.empty()) {
    if (m.content_type.starts_with(kConstrainText)) {
      add_text(out, " ");
      add_special(out, kConstrain);
      add_text(out, m.content_type.substr(kConstrainText.size()));
    } else {
      add_text(out, " " + m.content_type);
    }
  }
  add_special(out, kMessage);
  add_text(out, content);
  const bool tool_call = m.role == Role::kAssistant && !m.recipient.empty();
  add_special(out, tool_call ? kCall : kEnd);
}

std::vector<Segment> render_segments(const Conversation& conv) {
  std::vector<Segment> out;
  Message sys;
  sys.role = Role::kSystem;
  render_message(out, sys, system_text(conv.system));
  if (!conv.developer_instructions.empty() || !conv.developer_tools.empty()) {
    Message dev;
    dev.role = Role::kDeveloper;
    std::string text;
    if (!conv.developer_instructions.empty()) text = "# Instructions\n\n" + conv.developer_instructions;
    if (!conv.developer_tools.empty()) {
      text += (text.empty() ? "" : "\n\n") + std::string("# Tools\n\n") + conv.developer_tools;
    }
    render_message(out, dev, text);
  }
  const auto& msgs = conv.messages;
  bool last_assistant_is_final = false;
  for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
    if (it->role == Role::kAssistant) {
      last_assistant_is_final = it->channel == "final";
      break;
    }
  }
  const auto first_final =
      std::find_if(msgs.begin(), msgs.end(), [](const Message& m) { return m.channel == "final"; });
  const bool drop = conv.drop_analysis && last_assistant_is_final;
  for (auto it = msgs.begin(); it != msgs.end(); ++it) {
    if (drop && it < first_final && it->channel == "analysis") continue;
    if (it->role == Role::kSystem || it->role == Role::kDeveloper) {
      throw Error(
          "system and developer messages are set through Conversation::system and "
          "developer_instructions, not as conversation messages");
    }
    render_message(out, *it, it->content);
  }
  add_special(out, kStart);
  add_text(out, "assistant");
  return out;
}

}  // namespace

std::vector<TokenId> render_conversation(const Tokenizer& tokenizer,
                                         const Conversation& conversation) {
  std::vector<TokenId> ids;
  for (const Segment& s : render_segments(conversation)) {
    if (s.special != 0) {
      ids.push_back(s.special);
    } else {
      size_t num_replaced = 0;
      tokenizer.encode_into(s.text, ids, &num_replaced);
    }
  }
  return ids;
}

std::string render_conversation_text(const Conversation& conversation) {
  std::string out;
  for (const Segment& s : render_segments(conversation)) {
    out += s.special != 0 ? default_special_name(s.special) : s.text;
  }
  return out;
}

std::vector<TokenId> render_prompt(const Tokenizer& tokenizer, std::string_view user_text,
                                   const SystemOptions& system,
                                   std::string_view developer_instructions) {
  Conversation conv;
  conv.system = system;
  conv.developer_instructions = std::string(developer_instructions);
  conv.messages.push_back({Role::kUser, std::string(user_text), {}, {}, {}, {}});
  return render_conversation(tokenizer, conv);
}

// ---- output parsing ----------------------------------------------------------------------------
namespace {

// A header this long without <|message|> is not a header: the model is writing text.
constexpr size_t kMaxHeaderIds = 64;

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_ascii_space(s[b])) ++b;
  while (e > b && is_ascii_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// harmony's parse_header_from_string, lenient: never throws.
void parse_header(std::string header, std::optional<Role> known_role, ParsedMessage& m) {
  if (const size_t idx = header.find(kChannelText); idx != std::string::npos) {
    const size_t value_begin = idx + kChannelText.size();
    size_t value_end = value_begin;
    while (value_end < header.size() && !is_ascii_space(header[value_end]) &&
           header[value_end] != '<') {
      ++value_end;
    }
    m.channel = header.substr(value_begin, value_end - value_begin);
    header = header.substr(0, idx) + header.substr(value_end);
  }
  // "to=x<|constrain|>json" splits like "to=x <|constrain|>json".
  std::string spaced;
  size_t from = 0;
  for (size_t pos; (pos = header.find(kConstrainText, from)) != std::string::npos;
       from = pos + kConstrainText.size()) {
    spaced.append(header, from, pos - from);
    spaced += ' ';
    spaced += kConstrainText;
  }
  spaced.append(header, from);
  header = trim(spaced);
  std::vector<std::string> parts;
  for (size_t i = 0; i < header.size();) {
    while (i < header.size() && is_ascii_space(header[i])) ++i;
    size_t j = i;
    while (j < header.size() && !is_ascii_space(header[j])) ++j;
    if (j > i) parts.push_back(header.substr(i, j - i));
    i = j;
  }
  Role role = Role::kAssistant;
  if (known_role) {
    role = *known_role;
  } else if (!parts.empty()) {
    if (auto r = parse_role(parts.front())) {
      role = *r;
    } else {
      role = Role::kTool;  // "functions.x to=assistant": a tool's name stands in the role place
      m.author_name = parts.front();
      parts.erase(parts.begin());
    }
  }
  m.role = role;
  if (!parts.empty() && parts.front() == to_string(role)) parts.erase(parts.begin());
  if (parts.empty()) return;
  const size_t num_parts = parts.size();
  std::string last = parts.back();
  parts.pop_back();
  if (last.starts_with("to=")) {
    m.recipient = last.substr(3);
  } else if (num_parts == 1 && !last.starts_with(kConstrainText)) {
    m.recipient = last;
  } else {
    m.content_type = last;
    if (!parts.empty()) {
      const std::string& raw = parts.back();
      m.recipient = raw.starts_with("to=") ? raw.substr(3) : raw;
    }
  }
}

}  // namespace

HarmonyStream::HarmonyStream(const Tokenizer& tokenizer)
    : tokenizer_(tokenizer), decoder_(tokenizer, /*render_specials=*/true) {}

void HarmonyStream::begin_content() {
  state_ = State::kContent;
  header_ids_.clear();
  header_role_.reset();
}

void HarmonyStream::end_message() {
  decoder_.flush(current_.content);
  messages_.push_back(std::move(current_));
  current_ = ParsedMessage{};
  state_ = State::kExpectStart;
  header_ids_.clear();
  header_role_.reset();
}

HarmonyDelta HarmonyStream::push(TokenId id) {
  tokenizer_.check_id(id);
  HarmonyDelta delta;
  if (done()) {
    delta.channel = messages_.empty() ? std::string() : messages_.back().channel;
    delta.done = true;
    return delta;
  }
  const bool is_stop = id == kReturn || id == kCall;
  // Header text turned into content: the model wrote something that is not a header.
  const auto header_as_content = [&]() {
    current_ = ParsedMessage{};
    if (header_role_) current_.role = *header_role_;
    begin_content();
    std::string text = sanitize_utf8(tokenizer_.decode(header_ids_));
    current_.content += text;
    delta.text += text;
  };
  switch (state_) {
    case State::kExpectStart:
      if (id == kStart) {
        state_ = State::kHeader;
        header_role_.reset();
        header_ids_.clear();
        break;
      }
      if (is_stop || id == kEnd) break;  // a stop token right after <|end|> ends nothing
      // Lenient: text outside any message becomes a message without header.
      current_ = ParsedMessage{};
      begin_content();
      decoder_.push(id, delta.text);
      current_.content += delta.text;
      break;
    case State::kHeader:
      if (id == kMessage) {
        current_ = ParsedMessage{};
        const std::string header = sanitize_utf8(tokenizer_.decode(header_ids_));
        parse_header(header, header_role_, current_);
        begin_content();
      } else if (is_stop || id == kEnd) {
        if (!header_ids_.empty()) {
          header_as_content();
          end_message();
        } else {
          state_ = State::kExpectStart;
        }
      } else {
        header_ids_.push_back(id);
        if (header_ids_.size() > kMaxHeaderIds) header_as_content();
      }
      break;
    case State::kContent:
      if (is_stop || id == kEnd) {
        const size_t before = current_.content.size();
        delta.channel = current_.channel;
        end_message();
        delta.text += messages_.back().content.substr(before);
      } else {
        const size_t n = decoder_.push(id, current_.content);
        delta.text.append(current_.content, current_.content.size() - n, n);
      }
      break;
  }
  if (is_stop) stop_ = id == kReturn ? StopReason::kReturn : StopReason::kCall;
  if (delta.channel.empty()) {
    delta.channel = state_ == State::kContent ? current_.channel
                    : messages_.empty()       ? std::string()
                                              : messages_.back().channel;
  }
  delta.done = done();
  return delta;
}

void HarmonyStream::finish() {
  if (state_ == State::kContent) {
    end_message();
  } else if (state_ == State::kHeader && !header_ids_.empty()) {
    current_ = ParsedMessage{};
    if (header_role_) current_.role = *header_role_;
    current_.content = sanitize_utf8(tokenizer_.decode(header_ids_));
    end_message();
  }
}

}  // namespace gptoss::tok
