#include "host/server/replies.h"

#include <fmt/format.h>

namespace gptoss::server {

using nlohmann::json;

namespace {

std::string data(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

const char* id_prefix(Endpoint e) {
  switch (e) {
    case Endpoint::kChat: return "chatcmpl-";
    case Endpoint::kCompletions: return "cmpl-";
    case Endpoint::kResponses: return "resp_";
  }
  return "";
}

json tool_call_json(const ToolCall& c, int index) {
  return {{"index", index},
          {"id", c.id},
          {"type", "function"},
          {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

}  // namespace

Reply::Reply(const Job& job, std::string model)
    : job_(job), model_(std::move(model)), id_(new_id(id_prefix(job.endpoint))),
      created_(std::time(nullptr)) {}

json Reply::usage(const Outcome& o) const {
  if (job_.endpoint == Endpoint::kResponses) {
    return {{"input_tokens", o.prompt_tokens},
            {"input_tokens_details", {{"cached_tokens", o.cached_tokens}}},
            {"output_tokens", o.completion_tokens},
            {"output_tokens_details", {{"reasoning_tokens", 0}}},
            {"total_tokens", o.prompt_tokens + o.completion_tokens}};
  }
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.completion_tokens},
          {"total_tokens", o.prompt_tokens + o.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

json Reply::chunk(json delta, const json& finish) const {
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (job_.endpoint == Endpoint::kCompletions) {
    choice["text"] = delta.is_string() ? delta : json("");
    return {{"id", id_}, {"object", "text_completion"}, {"created", created_}, {"model", model_},
            {"choices", json::array({choice})}};
  }
  choice["delta"] = std::move(delta);
  return {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_},
          {"model", model_}, {"choices", json::array({choice})}};
}

json Reply::response_object(const Outcome* o) const {
  json r = {{"id", id_},         {"object", "response"}, {"created_at", created_},
            {"model", model_},   {"status", "in_progress"}, {"output", json::array()},
            {"error", nullptr},  {"incomplete_details", nullptr},
            {"instructions", job_.conversation.developer_instructions.empty()
                                 ? json(nullptr)
                                 : json(job_.conversation.developer_instructions)},
            {"max_output_tokens", job_.max_tokens}, {"temperature", job_.sampling.temperature},
            {"top_p", job_.sampling.top_p},         {"tool_choice", job_.tools ? "auto" : "none"},
            {"tools", json::array()},               {"parallel_tool_calls", false}};
  if (!o) return r;
  r["status"] = o->finish_reason == "length" ? "incomplete" : "completed";
  if (o->finish_reason == "length") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
  json& out = r["output"];
  if (!o->reasoning.empty()) {
    out.push_back({{"type", "reasoning"},
                   {"id", reasoning_id_.empty() ? new_id("rs_") : reasoning_id_},
                   {"summary", json::array()},
                   {"content", json::array({{{"type", "reasoning_text"}, {"text", o->reasoning}}})}});
  }
  if (!o->content.empty() || o->tool_calls.empty()) {
    out.push_back({{"type", "message"},
                   {"id", text_id_.empty() ? new_id("msg_") : text_id_},
                   {"role", "assistant"},
                   {"status", "completed"},
                   {"content", json::array({{{"type", "output_text"},
                                             {"text", o->content},
                                             {"annotations", json::array()}}})}});
  }
  for (const ToolCall& c : o->tool_calls) {
    out.push_back({{"type", "function_call"}, {"id", "fc_" + c.id.substr(5)}, {"call_id", c.id},
                   {"name", c.name}, {"arguments", c.arguments}, {"status", "completed"}});
  }
  r["usage"] = usage(*o);
  return r;
}

json Reply::body(const Outcome& o) const {
  switch (job_.endpoint) {
    case Endpoint::kChat: {
      json message = {{"role", "assistant"},
                      {"content", o.content.empty() && !o.tool_calls.empty() ? json(nullptr)
                                                                             : json(o.content)}};
      if (!o.reasoning.empty()) message["reasoning_content"] = o.reasoning;
      if (!o.tool_calls.empty()) {
        json calls = json::array();
        for (size_t i = 0; i < o.tool_calls.size(); ++i) {
          json c = tool_call_json(o.tool_calls[i], int(i));
          c.erase("index");
          calls.push_back(std::move(c));
        }
        message["tool_calls"] = std::move(calls);
      }
      return {{"id", id_},
              {"object", "chat.completion"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array({{{"index", 0},
                                        {"message", message},
                                        {"finish_reason", o.finish_reason},
                                        {"logprobs", nullptr}}})},
              {"usage", usage(o)}};
    }
    case Endpoint::kCompletions: {
      const std::string text = job_.echo ? job_.prompt + o.content : o.content;
      return {{"id", id_},
              {"object", "text_completion"},
              {"created", created_},
              {"model", model_},
              {"choices", json::array({{{"index", 0},
                                        {"text", text},
                                        {"finish_reason", o.finish_reason},
                                        {"logprobs", nullptr}}})},
              {"usage", usage(o)}};
    }
    case Endpoint::kResponses: return response_object(&o);
  }
  return {};
}

std::string Reply::event(const char* type, json d) {
  d["type"] = type;
  d["sequence_number"] = seq_++;
  return fmt::format("event: {}\ndata: {}\n\n", type, d.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string Reply::start_events() {
  switch (job_.endpoint) {
    case Endpoint::kChat: return data(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
    case Endpoint::kCompletions: return job_.echo ? data(chunk(job_.prompt, nullptr)) : "";
    case Endpoint::kResponses:
      return event("response.created", {{"response", response_object(nullptr)}}) +
             event("response.in_progress", {{"response", response_object(nullptr)}});
  }
  return {};
}

std::string Reply::delta_events(const Delta& d) {
  std::string out;
  if (job_.endpoint == Endpoint::kChat) {
    if (!d.reasoning.empty()) out += data(chunk({{"reasoning_content", d.reasoning}}, nullptr));
    if (!d.content.empty()) out += data(chunk({{"content", d.content}}, nullptr));
    for (const ToolCall& c : d.tool_calls) {
      out += data(chunk({{"tool_calls", json::array({tool_call_json(c, tool_index_++)})}}, nullptr));
    }
    return out;
  }
  if (job_.endpoint == Endpoint::kCompletions) {
    return d.content.empty() ? "" : data(chunk(d.content, nullptr));
  }
  // Responses: output items in order: reasoning (output_index 0 when present), message, calls.
  if (!d.reasoning.empty()) {
    if (!reasoning_open_) {
      reasoning_open_ = true;
      reasoning_id_ = new_id("rs_");
      out += event("response.output_item.added",
                   {{"output_index", 0},
                    {"item", {{"type", "reasoning"}, {"id", reasoning_id_}, {"summary", json::array()}}}});
    }
    reasoning_text_ += d.reasoning;
    out += event("response.reasoning_text.delta",
                 {{"item_id", reasoning_id_}, {"output_index", 0}, {"content_index", 0},
                  {"delta", d.reasoning}});
  }
  const int text_index = reasoning_open_ ? 1 : 0;
  if (!d.content.empty()) {
    if (!text_open_) {
      text_open_ = true;
      text_id_ = new_id("msg_");
      out += event("response.output_item.added",
                   {{"output_index", text_index},
                    {"item", {{"type", "message"}, {"id", text_id_}, {"role", "assistant"},
                              {"status", "in_progress"}, {"content", json::array()}}}});
      out += event("response.content_part.added",
                   {{"item_id", text_id_}, {"output_index", text_index}, {"content_index", 0},
                    {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
    }
    text_ += d.content;
    out += event("response.output_text.delta", {{"item_id", text_id_}, {"output_index", text_index},
                                                {"content_index", 0}, {"delta", d.content}});
  }
  return out;
}

std::string Reply::end_events(const Outcome& o) {
  std::string out;
  if (job_.endpoint == Endpoint::kChat) {
    out += data(chunk(json::object(), o.finish_reason));
    if (job_.include_usage) {
      json u = chunk(json::object(), nullptr);
      u["choices"] = json::array();
      u["usage"] = usage(o);
      out += data(u);
    }
    return out + "data: [DONE]\n\n";
  }
  if (job_.endpoint == Endpoint::kCompletions) {
    out += data(chunk("", o.finish_reason));
    if (job_.include_usage) {
      json u = chunk("", nullptr);
      u["choices"] = json::array();
      u["usage"] = usage(o);
      out += data(u);
    }
    return out + "data: [DONE]\n\n";
  }
  const json final = response_object(&o);
  int index = 0;
  for (const json& item : final["output"]) {
    if (item["type"] == "message" && text_open_) {
      out += event("response.output_text.done", {{"item_id", text_id_}, {"output_index", index},
                                                 {"content_index", 0}, {"text", text_}});
    }
    if (item["type"] == "function_call" || (item["type"] == "message" && !text_open_)) {
      out += event("response.output_item.added", {{"output_index", index}, {"item", item}});
      out += event("response.function_call_arguments.done",
                   {{"item_id", item["id"]}, {"output_index", index}, {"arguments", item["arguments"]}});
    }
    out += event("response.output_item.done", {{"output_index", index}, {"item", item}});
    ++index;
  }
  out += event(final["status"] == "completed" ? "response.completed" : "response.incomplete",
               {{"response", final}});
  return out;
}

std::string Reply::error_event(const ApiError& e) { return data(error_json(e)); }

}  // namespace gptoss::server
