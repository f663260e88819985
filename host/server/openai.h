// openai.h — the OpenAI HTTP API's JSON for `gptoss serve` (host/server/server.h): requests of
// /v1/chat/completions, /v1/completions and /v1/responses parsed into one Job (the harmony
// conversation, or a raw prompt, and the decoding settings), every refusal an ApiError with the
// HTTP status and OpenAI's error shape, and the JSON-schema tools rendered as harmony's
// `functions` namespace (TypeScript-like declarations, as openai/harmony writes them).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/sampling/sampler.h"
#include "host/text/harmony.h"

namespace gptoss::server {

// A refused request: HTTP status, OpenAI error type ("invalid_request_error", ...), the request
// field at fault (empty: none) and the code ("context_length_exceeded", ...; empty: none).
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {},
           std::string type = "invalid_request_error", std::string code = {})
      : std::runtime_error(std::move(message)), status(status), param(std::move(param)),
        type(std::move(type)), code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

// {"error": {"message", "type", "param", "code"}}.
nlohmann::json error_json(const ApiError& e);

// What a request leaves unset.
struct Defaults {
  sampling::SamplingParams sampling;  // from serve's --temp, --top-p, ...
  int max_tokens = 512;
  tok::ReasoningEffort reasoning = tok::ReasoningEffort::kMedium;
};

struct ToolCall {
  std::string id;         // "call_..."
  std::string name;       // without the "functions." prefix
  std::string arguments;  // JSON text as the model wrote it
};

enum class Endpoint { kChat, kCompletions, kResponses };

// One request for the engine.
struct Job {
  Endpoint endpoint = Endpoint::kChat;
  tok::Conversation conversation;  // chat and responses
  std::string prompt;              // completions: raw text
  std::vector<int> prompt_ids;     // completions: token ids instead of text
  sampling::SamplingParams sampling;
  int max_tokens = 0;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool tools = false;          // function tools declared and tool_choice is not "none"
  bool echo = false;           // completions: the prompt before the completion
  std::string model;
};

// Parse the request body of each endpoint; throws ApiError (400) naming the field.
Job parse_chat_request(std::string_view body, const Defaults& defaults);
Job parse_completion_request(std::string_view body, const Defaults& defaults);
Job parse_responses_request(std::string_view body, const Defaults& defaults);

// The body as JSON (an object; keys in their order: a tool's parameters render in it), or ApiError 400 "the body is not valid JSON: ...".
nlohmann::ordered_json parse_body(std::string_view body);

// The `functions` namespace of harmony's developer message for OpenAI tool definitions
// ([{type: "function", function: {name, description, parameters}}] or the Responses API's flat
// {type: "function", name, description, parameters}). Throws ApiError naming the bad entry.
std::string render_functions(const nlohmann::ordered_json& tools, const std::string& param);

// A fresh id: prefix + 24 hex digits.
std::string new_id(std::string_view prefix);

}  // namespace gptoss::server
