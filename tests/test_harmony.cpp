// test_harmony.cpp — harmony rendering (the FACTS.md 4.2 example id for id, date, developer,
// reasoning, history with tool calls) and the streaming output parser on recorded token
// streams (analysis then final, a tool call ending in <|call|>, <|end|> not stopping).
#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "host/error.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace tok = gptoss::tok;
using tok::TokenId;

namespace {

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load_default();
  return t;
}

// FACTS.md 4.2: the no-date example, 64 tokens.
const std::vector<TokenId> kSimpleConvoIds = {
    200006, 17360, 200008, 3575,  553,   17554,  162016, 11,    261,  4410,   6439,   2359,   22203,
    656,    7788,  17527,  558,   87447, 100594, 25,     220,   1323, 19,     12,     3218,   279,
    30377,  289,   25,     14093, 279,   2,      13888,  18403, 25,   8450,   11,     49159,  11,
    1721,   13,    21030,  2804,  413,   7360,   395,    1753,  3176, 13,     200007, 200006, 1428,
    200008, 4827,  382,    220,   17,    659,    220,    17,    30,   200007, 200006, 173781};

const char* kSimpleConvoText =
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, "
    "final. Channel must be included for every message.<|end|><|start|>user<|message|>What is "
    "2 + 2?<|end|><|start|>assistant";

std::vector<TokenId> cat(std::initializer_list<std::vector<TokenId>> parts) {
  std::vector<TokenId> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
std::vector<TokenId> text(std::string_view s) { return tokenizer().encode(s); }

struct Streamed {
  std::string analysis, final, commentary;
  int num_done = 0;
  size_t first_done_at = SIZE_MAX;
};

Streamed feed(tok::HarmonyStream& stream, const std::vector<TokenId>& ids) {
  Streamed out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto d = stream.push(ids[i]);
    if (d.channel == "analysis") out.analysis += d.text;
    if (d.channel == "final") out.final += d.text;
    if (d.channel == "commentary") out.commentary += d.text;
    if (d.done && out.first_done_at == SIZE_MAX) out.first_done_at = i;
    out.num_done += d.done;
  }
  return out;
}

}  // namespace

TEST_CASE("harmony renders the FACTS 4.2 example id for id", "[harmony]") {
  tok::Conversation conv;
  conv.messages.push_back({tok::Role::kUser, "What is 2 + 2?", {}, {}, {}, {}});
  const auto ids = tok::render_conversation(tokenizer(), conv);
  CHECK(ids.size() == 64);
  CHECK(ids == kSimpleConvoIds);
  CHECK(tok::render_conversation_text(conv) == kSimpleConvoText);
  CHECK(tok::render_prompt(tokenizer(), "What is 2 + 2?") == kSimpleConvoIds);
  CHECK(tokenizer().decode(ids) == kSimpleConvoText);
}

TEST_CASE("harmony system options: date, reasoning, developer, function tools", "[harmony]") {
  tok::Conversation conv;
  conv.system.current_date = "2025-08-05";
  conv.system.reasoning = tok::ReasoningEffort::kHigh;
  conv.developer_instructions = "Answer in French.";
  conv.messages.push_back({tok::Role::kUser, "Hi", {}, {}, {}, {}});
  const std::string expected =
      "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
      "Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: high\n\n# Valid "
      "channels: analysis, commentary, final. Channel must be included for every message."
      "<|end|><|start|>developer<|message|># Instructions\n\nAnswer in French.<|end|>"
      "<|start|>user<|message|>Hi<|end|><|start|>assistant";
  CHECK(tok::render_conversation_text(conv) == expected);
  const auto ids = tok::render_conversation(tokenizer(), conv);
  CHECK(tokenizer().decode(ids) == expected);
  // Header words are their own pieces: developer = 77944 right after <|start|>.
  const auto dev = std::find(ids.begin() + 1, ids.end(), tok::kStart);
  REQUIRE(dev + 1 < ids.end());
  CHECK(dev[1] == 77944u);

  conv.system.function_tools = true;
  CHECK(tok::render_conversation_text(conv).find(
            "message.\nCalls to these tools must go to the commentary channel: 'functions'."
            "<|end|>") != std::string::npos);
  CHECK(tok::parse_reasoning_effort("low") == tok::ReasoningEffort::kLow);
  CHECK_THROWS_AS(tok::parse_reasoning_effort("extreme"), gptoss::Error);
}

TEST_CASE("harmony renders history: tool call, tool result, dropped analysis", "[harmony]") {
  tok::Conversation conv;
  conv.messages = {
      {tok::Role::kUser, "Weather in SF?", {}, {}, {}, {}},
      {tok::Role::kAssistant, "Need to call the tool.", {}, "analysis", {}, {}},
      {tok::Role::kAssistant,
       "{\"location\":\"SF\"}",
       {},
       "commentary",
       "functions.get_weather",
       "<|constrain|>json"},
      {tok::Role::kTool, "{\"temp\":20}", "functions.get_weather", "commentary", "assistant", {}},
  };
  const std::string text = tok::render_conversation_text(conv);
  CHECK(
      text.find("<|start|>assistant<|channel|>analysis<|message|>Need to call the tool.<|end|>") !=
      std::string::npos);  // kept: the last assistant message is not final
  CHECK(text.find("<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>"
                  "json<|message|>{\"location\":\"SF\"}<|call|>") != std::string::npos);
  CHECK(text.find("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"
                  "{\"temp\":20}<|end|><|start|>assistant") != std::string::npos);
  const auto ids = tok::render_conversation(tokenizer(), conv);
  CHECK(tokenizer().decode(ids) == text);
  CHECK(std::count(ids.begin(), ids.end(), tok::kConstrain) == 1);  // a special, not text

  conv.messages.push_back({tok::Role::kAssistant, "It is 20 C.", {}, "final", {}, {}});
  conv.messages.push_back({tok::Role::kUser, "Thanks", {}, {}, {}, {}});
  const std::string dropped = tok::render_conversation_text(conv);
  CHECK(dropped.find("Need to call the tool.") == std::string::npos);
  CHECK(dropped.find("<|channel|>final<|message|>It is 20 C.<|end|>") != std::string::npos);

  tok::Message tool_without_name{tok::Role::kTool, "x", {}, {}, {}, {}};
  conv.messages.push_back(tool_without_name);
  CHECK_THROWS_AS(tok::render_conversation(tokenizer(), conv), gptoss::Error);
}

TEST_CASE("harmony stream: analysis then final, <|end|> does not stop", "[harmony]") {
  // Recorded shape of a gpt-oss answer (header words as in the FACTS token dumps).
  const auto ids = cat({{tok::kChannel, 35644, tok::kMessage},
                        text("User asks 2+2. Answer 4."),
                        {tok::kEnd, tok::kStart, 173781, tok::kChannel, 17196, tok::kMessage},
                        text("2 + 2 = 4."),
                        {tok::kReturn}});
  tok::HarmonyStream stream(tokenizer());
  const auto s = feed(stream, ids);
  CHECK(s.analysis == "User asks 2+2. Answer 4.");
  CHECK(s.final == "2 + 2 = 4.");
  CHECK(s.num_done == 1);
  CHECK(s.first_done_at == ids.size() - 1);  // only <|return|>, not the earlier <|end|>
  CHECK(stream.stop_reason() == tok::StopReason::kReturn);
  REQUIRE(stream.messages().size() == 2);
  CHECK(stream.messages()[0].channel == "analysis");
  CHECK(stream.messages()[0].content == "User asks 2+2. Answer 4.");
  CHECK(stream.messages()[0].role == tok::Role::kAssistant);
  CHECK(stream.messages()[1].channel == "final");
  CHECK(stream.messages()[1].role == tok::Role::kAssistant);
  CHECK(stream.push(13).done);  // stays done
}

TEST_CASE("harmony stream: a tool call ends in <|call|>", "[harmony]") {
  const auto ids = cat({{tok::kChannel, 35644, tok::kMessage},
                        text("Need weather."),
                        {tok::kEnd, tok::kStart, 173781, tok::kChannel},
                        text("commentary to=functions.get_weather"),
                        text(" "),
                        {tok::kConstrain},
                        text("json"),
                        {tok::kMessage},
                        text("{\"location\":\"San Francisco\"}"),
                        {tok::kCall}});
  tok::HarmonyStream stream(tokenizer());
  const auto s = feed(stream, ids);
  CHECK(s.commentary == "{\"location\":\"San Francisco\"}");
  CHECK(stream.stop_reason() == tok::StopReason::kCall);
  REQUIRE(stream.messages().size() == 2);
  const auto& call = stream.messages()[1];
  CHECK(call.channel == "commentary");
  CHECK(call.recipient == "functions.get_weather");
  CHECK(call.content_type == "<|constrain|>json");

  // The recipient may also come before the channel (harmony's own rendering order).
  const auto ids2 = cat({text(" to=functions.lookup"),
                         {tok::kChannel},
                         text("commentary json"),
                         {tok::kMessage},
                         text("{}"),
                         {tok::kCall}});
  tok::HarmonyStream stream2(tokenizer());
  feed(stream2, ids2);
  // "to=x<|constrain|>json" without the space still splits into recipient and content type.
  const auto ids3 = cat({{tok::kChannel}, text("commentary to=functions.f"), {tok::kConstrain},
                         text("json"), {tok::kMessage}, text("{}"), {tok::kCall}});
  tok::HarmonyStream stream3(tokenizer());
  feed(stream3, ids3);
  REQUIRE(stream3.messages().size() == 1);
  CHECK(stream3.messages()[0].recipient == "functions.f");
  CHECK(stream3.messages()[0].content_type == "<|constrain|>json");
  CHECK(stream3.done());
  REQUIRE(stream2.messages().size() == 1);
  CHECK(stream2.messages()[0].recipient == "functions.lookup");
  CHECK(stream2.messages()[0].content_type == "json");
  CHECK(stream2.messages()[0].channel == "commentary");
}

TEST_CASE("harmony stream: split characters, odd output, finish", "[harmony]") {
  const auto& t = tokenizer();
  // An emoji fed one byte per token never shows up half.
  std::vector<TokenId> ids = {tok::kChannel, 17196, tok::kMessage};
  for (unsigned char c : std::string("\xF0\x9F\x98\x80!"))
    ids.push_back(*t.rank_of(std::string(1, char(c))));
  tok::HarmonyStream stream(t);
  std::vector<std::string> deltas;
  for (TokenId id : ids) deltas.push_back(stream.push(id).text);
  CHECK(deltas[3].empty());
  CHECK(deltas[5].empty());
  CHECK(deltas[6] == "\xF0\x9F\x98\x80");
  CHECK(deltas[7] == "!");
  CHECK_FALSE(stream.done());
  stream.finish();
  REQUIRE(stream.messages().size() == 1);
  CHECK(stream.messages()[0].content == "\xF0\x9F\x98\x80!");

  // No header at all, stray tokens between messages, a stop inside a header: no throw.
  tok::HarmonyStream odd(t);
  const auto odd_ids = cat({text("plain"),
                            {tok::kEnd},
                            text("stray"),
                            {tok::kEnd, tok::kStart},
                            text("assistant"),
                            {tok::kReturn}});
  CHECK_NOTHROW(feed(odd, odd_ids));
  CHECK(odd.done());
  CHECK(odd.messages().size() == 3);
  CHECK_THROWS_AS(odd.push(tok::kVocabSize), gptoss::Error);
}

TEST_CASE("CLI tokenize --harmony gives the FACTS example", "[harmony][cli]") {
  const std::string cmd = std::string(GPTOSS_BINARY) + " tokenize --harmony 'What is 2 + 2?' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  CHECK(pclose(p) == 0);
  CHECK(out == fmt::format("{}\n", fmt::join(kSimpleConvoIds, " ")));

  // The options reach the system and developer messages.
  const std::string cmd2 = std::string(GPTOSS_BINARY) +
                           " tokenize --harmony --reasoning low --date 2025-08-05 "
                           "--developer 'Be brief.' Hi | xargs " +
                           GPTOSS_BINARY + " detokenize -n";
  p = popen(cmd2.c_str(), "r");
  REQUIRE(p != nullptr);
  out.clear();
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  CHECK(pclose(p) == 0);
  CHECK(out.find("Knowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\nReasoning: low") !=
        std::string::npos);
  CHECK(out.find("<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"
                 "<|start|>user<|message|>Hi<|end|><|start|>assistant") != std::string::npos);
}
