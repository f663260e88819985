// replies.h — the response JSON of each endpoint of `gptoss serve`, whole or as server-sent
// events: chat.completion / chat.completion.chunk (with reasoning_content, tool_calls, usage),
// text_completion, and the Responses API's response object and its stream events.
#pragma once

#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

#include "host/server/generate.h"
#include "host/server/openai.h"

namespace gptoss::server {

class Reply {
 public:
  Reply(const Job& job, std::string model);
  // The whole response (stream false).
  nlohmann::json body(const Outcome& outcome) const;
  // Server-sent events ("data: {...}\n\n", or "event: X\ndata: {...}\n\n" for responses): the
  // opening ones, those of one step, and the closing ones (ending with data: [DONE] where the
  // endpoint has it).
  std::string start_events();
  std::string delta_events(const Delta& delta);
  std::string end_events(const Outcome& outcome);
  // An error in the stream (after the 200 headers were sent).
  static std::string error_event(const ApiError& e);

 private:
  nlohmann::json chunk(nlohmann::json delta, const nlohmann::json& finish) const;
  nlohmann::json usage(const Outcome& o) const;
  nlohmann::json response_object(const Outcome* o) const;
  std::string event(const char* type, nlohmann::json data);

  const Job& job_;
  std::string model_;
  std::string id_;
  std::time_t created_;
  int tool_index_ = 0;
  // responses streaming: output items opened so far
  int seq_ = 0;
  bool text_open_ = false, reasoning_open_ = false;
  std::string text_id_, reasoning_id_;
  std::string text_, reasoning_text_;
};

}  // namespace gptoss::server
