// test_server_api.cpp — the JSON side of `gptoss serve` without a model (tag [server]): requests
// parsed into harmony conversations (system/developer -> instructions, assistant reasoning and
// tool calls, tool results), JSON-schema tools rendered as harmony's functions namespace, the
// model's output split into reasoning, content and tool calls (a <|call|> -> finish_reason
// tool_calls), stop strings, and the response JSON of each endpoint.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "host/server/generate.h"
#include "host/server/openai.h"
#include "host/server/replies.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

using namespace gptoss;
using namespace gptoss::server;
using nlohmann::json;

namespace {

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load_default();
  return t;
}

// Ids of a harmony text where <|...|> are the special tokens.
std::vector<int> ids_of(const std::string& text) {
  std::vector<int> out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t s = text.find("<|", i);
    const std::string plain = text.substr(i, s == std::string::npos ? std::string::npos : s - i);
    for (tok::TokenId id : tokenizer().encode(plain)) out.push_back(int(id));
    if (s == std::string::npos) break;
    const size_t e = text.find("|>", s);
    out.push_back(int(*tokenizer().special_id(text.substr(s, e + 2 - s))));
    i = e + 2;
  }
  return out;
}

const nlohmann::ordered_json kWeatherTool = {
    {"type", "function"},
    {"function",
     {{"name", "get_current_weather"},
      {"description", "Gets the current weather in the provided location."},
      {"parameters",
       {{"type", "object"},
        {"properties",
         {{"location", {{"type", "string"}, {"description", "The city and state, e.g. San Francisco, CA"}}},
          {"format", {{"type", "string"}, {"enum", {"celsius", "fahrenheit"}}, {"default", "celsius"}}}}},
        {"required", {"location"}}}}}}};

}  // namespace

TEST_CASE("serve: tools render as harmony's functions namespace", "[server]") {
  const std::string ns = render_functions(nlohmann::ordered_json::array({kWeatherTool,
                                                       {{"type", "function"},
                                                        {"function", {{"name", "get_location"},
                                                                      {"description", "Gets the location"}}}}}),
                                          "tools");
  CHECK(ns ==
        "## functions\n\nnamespace functions {\n\n"
        "// Gets the current weather in the provided location.\n"
        "type get_current_weather = (_: {\n"
        "// The city and state, e.g. San Francisco, CA\n"
        "location: string,\n"
        "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n"
        "}) => any;\n\n"
        "// Gets the location\n"
        "type get_location = () => any;\n\n"
        "} // namespace functions");
  using ojson = nlohmann::ordered_json;
  CHECK_THROWS_AS(render_functions(ojson::array({{{"type", "code_interpreter"}}}), "tools"), ApiError);
  CHECK_THROWS_WITH(render_functions(ojson::array({{{"type", "function"}, {"function", ojson::object()}}}), "tools"),
                    Catch::Contains("'tools[0].function.name' is missing"));
}

TEST_CASE("serve: chat requests become harmony conversations", "[server]") {
  Defaults d;
  d.sampling.temperature = 0.7f;
  d.max_tokens = 99;
  const json req = {
      {"messages",
       json::array({{{"role", "system"}, {"content", "Be brief."}},
                    {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Weather "}},
                                                                {{"type", "text"}, {"text", "in Paris?"}}})}},
                    {{"role", "assistant"},
                     {"reasoning_content", "Need the tool."},
                     {"content", nullptr},
                     {"tool_calls", json::array({{{"id", "call_1"},
                                                  {"type", "function"},
                                                  {"function", {{"name", "get_current_weather"},
                                                                {"arguments", "{\"location\":\"Paris\"}"}}}}})}},
                    {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "{\"temp\":20}"}}})},
      {"tools", json::array({json(kWeatherTool)})},
      {"reasoning_effort", "low"},
      {"stop", "END"},
      {"max_completion_tokens", 5}};
  const Job job = parse_chat_request(req.dump(), d);
  CHECK(job.max_tokens == 5);
  CHECK(job.sampling.temperature == 0.7f);
  CHECK(job.stop == std::vector<std::string>{"END"});
  CHECK(job.tools);
  const std::string text = tok::render_conversation_text(job.conversation);
  CHECK_THAT(text, Catch::Contains("Reasoning: low"));
  CHECK_THAT(text, Catch::Contains("Calls to these tools must go to the commentary channel: 'functions'."));
  CHECK_THAT(text, Catch::Contains("<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools\n\n"
                                   "## functions\n\nnamespace functions {"));
  CHECK_THAT(text, Catch::Contains("<|start|>user<|message|>Weather in Paris?<|end|>"));
  CHECK_THAT(text, Catch::Contains("<|start|>assistant<|channel|>analysis<|message|>Need the tool.<|end|>"));
  CHECK_THAT(text, Catch::Contains("<|start|>assistant to=functions.get_current_weather<|channel|>commentary "
                                   "<|constrain|>json<|message|>{\"location\":\"Paris\"}<|call|>"));
  CHECK_THAT(text, Catch::Contains("<|start|>functions.get_current_weather to=assistant<|channel|>"
                                   "commentary<|message|>{\"temp\":20}<|end|>"));
  CHECK(text.ends_with("<|start|>assistant"));

  // tool_choice none: the tools are not offered.
  json none = req;
  none["tool_choice"] = "none";
  CHECK_FALSE(parse_chat_request(none.dump(), d).tools);
  CHECK(parse_chat_request(none.dump(), d).conversation.developer_tools.empty());
}

TEST_CASE("serve: responses API input items", "[server]") {
  const json req = {
      {"instructions", "Answer in French."},
      {"reasoning", {{"effort", "high"}}},
      {"max_output_tokens", 7},
      {"tools", json::array({{{"type", "function"}, {"name", "get_location"}, {"description", "Where"}}})},
      {"input", json::array({{{"role", "user"}, {"content", "Where am I?"}},
                             {{"type", "reasoning"}, {"summary", json::array()},
                              {"content", json::array({{{"type", "reasoning_text"}, {"text", "call it"}}})}},
                             {{"type", "function_call"}, {"call_id", "c9"}, {"name", "get_location"}, {"arguments", "{}"}},
                             {{"type", "function_call_output"}, {"call_id", "c9"}, {"output", "Paris"}}})}};
  const Job job = parse_responses_request(req.dump(), {});
  CHECK(job.max_tokens == 7);
  const std::string text = tok::render_conversation_text(job.conversation);
  CHECK_THAT(text, Catch::Contains("Reasoning: high"));
  CHECK_THAT(text, Catch::Contains("# Instructions\n\nAnswer in French.\n\n# Tools"));
  CHECK_THAT(text, Catch::Contains("type get_location = () => any;"));
  CHECK_THAT(text, Catch::Contains("<|start|>functions.get_location to=assistant<|channel|>commentary<|message|>Paris<|end|>"));
  CHECK_THROWS_WITH(parse_responses_request(R"({"input":[{"type":"function_call_output","call_id":"x"}]})", {}),
                    Catch::Contains("names no earlier function_call"));
  CHECK(parse_responses_request(R"({"input":"hi"})", {}).conversation.messages.size() == 1);
}

TEST_CASE("serve: model output split into reasoning, content and tool calls", "[server]") {
  Job job;
  {
    OutputParser p(tokenizer(), job);
    std::string content, reasoning;
    for (int id : ids_of("<|channel|>analysis<|message|>Think first.<|end|><|start|>assistant"
                         "<|channel|>final<|message|>Hello there!<|return|>")) {
      const Delta d = p.push(id);
      content += d.content;
      reasoning += d.reasoning;
      if (!p.finish_reason().empty()) break;
    }
    content += p.finish().content;
    CHECK(reasoning == "Think first.");
    CHECK(content == "Hello there!");
    CHECK(p.content() == content);
    CHECK(p.finish_reason() == "stop");
  }
  {
    OutputParser p(tokenizer(), job);
    std::vector<ToolCall> calls;
    std::string content;
    for (int id : ids_of("<|channel|>commentary to=functions.get_current_weather <|constrain|>json"
                         "<|message|>{\"location\":\"Paris\"}<|call|>")) {
      const Delta d = p.push(id);
      calls.insert(calls.end(), d.tool_calls.begin(), d.tool_calls.end());
      content += d.content;
      if (!p.finish_reason().empty()) break;
    }
    CHECK(content.empty());
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].name == "get_current_weather");
    CHECK(calls[0].arguments == "{\"location\":\"Paris\"}");
    CHECK(calls[0].id.rfind("call_", 0) == 0);
    CHECK(p.finish_reason() == "tool_calls");

    // The chat response: content null, tool_calls, finish_reason tool_calls; streamed as a chunk.
    Outcome o;
    o.tool_calls = calls;
    o.finish_reason = "tool_calls";
    Reply reply(job, "m");
    const json b = reply.body(o);
    CHECK(b["choices"][0]["message"]["content"].is_null());
    CHECK(b["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_current_weather");
    CHECK(b["choices"][0]["finish_reason"] == "tool_calls");
    Delta d;
    d.tool_calls = calls;
    const std::string ev = reply.delta_events(d);
    CHECK_THAT(ev, Catch::Contains("\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"location\\\":\\\"Paris\\\"}\""));
    CHECK_THAT(reply.end_events(o), Catch::EndsWith("data: [DONE]\n\n"));
    Job rj;
    rj.endpoint = Endpoint::kResponses;
    const json r = Reply(rj, "m").body(o);
    CHECK(r["object"] == "response");
    CHECK(r["output"][0]["type"] == "function_call");
    CHECK(r["output"][0]["call_id"] == calls[0].id);
  }
  {
    // Streamed reasoning: chat's delta.reasoning_content; the Responses API's reasoning item and
    // text deltas, closed by response.completed with the whole output.
    Delta d;
    d.reasoning = "Think.";
    d.content = "Hi";
    Reply chat(job, "m");
    const std::string ev = chat.delta_events(d);
    CHECK_THAT(ev, Catch::Contains("\"delta\":{\"reasoning_content\":\"Think.\"}"));
    CHECK_THAT(ev, Catch::Contains("\"delta\":{\"content\":\"Hi\"}"));
    Job rj;
    rj.endpoint = Endpoint::kResponses;
    Reply resp(rj, "m");
    Outcome o;
    o.reasoning = "Think.";
    o.content = "Hi";
    o.finish_reason = "stop";
    std::string all = resp.start_events();  // in this order (operands of + are unsequenced)
    all += resp.delta_events(d);
    all += resp.end_events(o);
    size_t at = 0;
    for (const char* e : {"event: response.created", "event: response.output_item.added",
                          "event: response.reasoning_text.delta", "event: response.output_text.delta",
                          "event: response.output_text.done", "event: response.completed"}) {
      const size_t next = all.find(e, at);
      INFO(e);
      CHECK(next != std::string::npos);
      at = next == std::string::npos ? at : next;
    }
    const json body = resp.body(o);
    CHECK(body["output"][0]["type"] == "reasoning");
    CHECK(body["output"][1]["content"][0]["text"] == "Hi");
    CHECK(body["status"] == "completed");
  }
  {
    // A stop string ends the reply before it; text that might start it is held back.
    Job s;
    s.stop = {"there"};
    OutputParser p(tokenizer(), s);
    std::string content;
    for (int id : ids_of("<|channel|>final<|message|>Hello there!<|return|>")) {
      content += p.push(id).content;
      if (!p.finish_reason().empty()) break;
    }
    content += p.finish().content;
    CHECK(content == "Hello ");
    CHECK(p.finish_reason() == "stop");
  }
  {
    // No harmony structure (random weights): raw text, the same whole or token by token.
    OutputParser p(tokenizer(), job);
    std::string content;
    const std::vector<int> ids = ids_of("just some words without any header at all");
    for (int id : ids) content += p.push(id).content;
    content += p.finish().content;
    CHECK(content == "just some words without any header at all");
    CHECK(p.finish_reason().empty());
  }
}
