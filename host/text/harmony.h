// harmony.h — the harmony chat format of gpt-oss (FACTS.md section 4.2), over the o200k_harmony
// tokenizer. Rendering: system / developer / conversation messages -> ids ending in
// <|start|>assistant (byte-exact with openai/harmony's renderer). Parsing: HarmonyStream turns
// the model's generated ids into per-channel text deltas and messages; generation stops on
// <|return|> or <|call|>, never on <|end|> (the model continues with <|start|>assistant...).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host/text/tokenizer.h"

namespace gptoss::tok {

enum class ReasoningEffort { kLow, kMedium, kHigh };
std::string_view to_string(ReasoningEffort effort);
// "low" | "medium" | "high"; throws gptoss::Error (with a hint) otherwise.
ReasoningEffort parse_reasoning_effort(std::string_view text);

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool };
std::string_view to_string(Role role);
std::optional<Role> parse_role(std::string_view text);

inline constexpr std::string_view kDefaultModelIdentity =
    "You are ChatGPT, a large language model trained by OpenAI.";
inline constexpr std::string_view kDefaultKnowledgeCutoff = "2024-06";

// The system message (harmony SystemContent with its defaults).
struct SystemOptions {
  std::string model_identity{kDefaultModelIdentity};
  std::string knowledge_cutoff{kDefaultKnowledgeCutoff};
  std::string current_date;  // "YYYY-MM-DD"; empty: no "Current date:" line
  ReasoningEffort reasoning = ReasoningEffort::kMedium;
  // Adds "Calls to these tools must go to the commentary channel: 'functions'." (harmony does so
  // when the developer message declares function tools; tool definitions are not rendered here).
  bool function_tools = false;
};

// One conversation message after the system/developer ones.
struct Message {
  Role role = Role::kUser;
  std::string content;
  std::string author_name;   // tools: the tool's name, e.g. "functions.get_weather" (required)
  std::string channel;       // "analysis" | "commentary" | "final" | empty
  std::string recipient;     // e.g. "functions.get_weather"; empty: none
  std::string content_type;  // e.g. "<|constrain|>json" or "json"; empty: none
};

struct Conversation {
  SystemOptions system;
  std::string developer_instructions;  // empty: no developer message
  // The developer message's "# Tools" section after the instructions, e.g. "## functions\n\n
  // namespace functions {...} // namespace functions" (the server renders JSON-schema tools so);
  // set system.function_tools with it. Empty: none.
  std::string developer_tools;
  std::vector<Message> messages;
  // harmony's auto_drop_analysis: when the last assistant message is on the final channel,
  // analysis messages before the first final message are not rendered.
  bool drop_analysis = true;
};

// The ids of `conversation`, ready for the assistant: ends with <|start|>assistant.
std::vector<TokenId> render_conversation(const Tokenizer& tokenizer,
                                         const Conversation& conversation);
// The same as text (specials written out), for display and tests.
std::string render_conversation_text(const Conversation& conversation);
// A single user message with the default system message (the `-p` prompt of generate).
std::vector<TokenId> render_prompt(const Tokenizer& tokenizer, std::string_view user_text,
                                   const SystemOptions& system = {},
                                   std::string_view developer_instructions = {});

// A message parsed from model output.
struct ParsedMessage {
  Role role = Role::kAssistant;
  std::string author_name;  // tool messages: the tool name
  std::string channel;
  std::string recipient;
  std::string content_type;
  std::string content;
};

enum class StopReason { kNone, kReturn, kCall };

// What one generated id produced: the channel of the current message and the new content text
// (valid UTF-8, possibly empty: header tokens and incomplete characters produce none).
struct HarmonyDelta {
  std::string channel;
  std::string text;
  bool done = false;  // <|return|> or <|call|> was seen: stop generating
};

// Streaming parser of generated ids, for a prompt that ended with <|start|>assistant.
// Lenient where harmony's strict parser would throw (bad model output must not crash the run):
// an unparsable header becomes content, and a stray token between messages starts a message
// without header. Ids >= vocab_size throw gptoss::Error.
class HarmonyStream {
 public:
  explicit HarmonyStream(const Tokenizer& tokenizer);
  HarmonyDelta push(TokenId id);
  // End of generation without a stop token (token limit): completes the current message.
  void finish();
  bool done() const { return stop_ != StopReason::kNone; }
  StopReason stop_reason() const { return stop_; }
  // Completed messages so far (the current one is added when it ends).
  const std::vector<ParsedMessage>& messages() const { return messages_; }
  // The message being generated: its header fields and content so far.
  const ParsedMessage& current() const { return current_; }
  bool in_content() const { return state_ == State::kContent; }

 private:
  enum class State { kExpectStart, kHeader, kContent };
  void begin_content();
  void end_message();

  Tokenizer tokenizer_;
  StreamDecoder decoder_;
  State state_ = State::kHeader;
  std::optional<Role> header_role_ = Role::kAssistant;  // known role of the next header
  std::vector<TokenId> header_ids_;
  ParsedMessage current_;
  std::vector<ParsedMessage> messages_;
  StopReason stop_ = StopReason::kNone;
};

}  // namespace gptoss::tok
