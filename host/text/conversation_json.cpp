#include "host/text/conversation_json.h"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "host/error.h"

namespace gptoss::tok {
namespace {

constexpr std::string_view kFormat = "gptoss-chat-1";

std::string optional_string(const nlohmann::json& m, const char* key, size_t index) {
  const auto it = m.find(key);
  if (it == m.end() || it->is_null()) return {};
  if (!it->is_string()) {
    throw Error(fmt::format("conversation JSON: message {}: \"{}\" is not a string", index, key));
  }
  return it->get<std::string>();
}

}  // namespace

std::string conversation_to_json(const SavedConversation& c) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["developer"] = c.developer;
  j["messages"] = nlohmann::ordered_json::array();
  for (const Message& m : c.messages) {
    nlohmann::ordered_json o;
    o["role"] = to_string(m.role);
    if (!m.author_name.empty()) o["name"] = m.author_name;
    if (!m.channel.empty()) o["channel"] = m.channel;
    if (!m.recipient.empty()) o["recipient"] = m.recipient;
    if (!m.content_type.empty()) o["content_type"] = m.content_type;
    o["content"] = m.content;
    j["messages"].push_back(std::move(o));
  }
  // Invalid UTF-8 (a reply cut inside a character cannot happen: the stream decoder completes
  // characters) is replaced rather than refused.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

SavedConversation conversation_from_json(std::string_view text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("conversation JSON: not valid JSON ({})", e.what()),
                "give a file written by /save, or a JSON array of {\"role\", \"content\"} objects");
  }
  SavedConversation out;
  const nlohmann::json* messages = &j;
  if (j.is_object()) {
    if (const auto f = j.find("format"); f != j.end() && (!f->is_string() || *f != kFormat)) {
      throw Error(fmt::format("conversation JSON: unknown format {} (this gptoss reads {})",
                              f->dump(), kFormat));
    }
    if (const auto d = j.find("developer"); d != j.end() && !d->is_null()) {
      if (!d->is_string()) throw Error("conversation JSON: \"developer\" is not a string");
      out.developer = d->get<std::string>();
    }
    const auto m = j.find("messages");
    if (m == j.end()) throw Error("conversation JSON: the object has no \"messages\"");
    messages = &*m;
  }
  if (!messages->is_array()) {
    throw Error("conversation JSON: the messages are not an array",
                "give {\"messages\": [...]} or a bare array of messages");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const nlohmann::json& m = (*messages)[i];
    if (!m.is_object()) throw Error(fmt::format("conversation JSON: message {} is not an object", i));
    const std::string role_text = optional_string(m, "role", i);
    const std::optional<Role> role = parse_role(role_text);
    if (!role) {
      throw Error(fmt::format("conversation JSON: message {}: unknown role \"{}\"", i, role_text),
                  "the roles are user, assistant and tool");
    }
    if (*role == Role::kSystem || *role == Role::kDeveloper) {
      throw Error(fmt::format("conversation JSON: message {}: a {} message; the developer "
                              "instructions go in the top-level \"developer\" field",
                              i, role_text));
    }
    const auto content = m.find("content");
    if (content == m.end() || !content->is_string()) {
      throw Error(fmt::format("conversation JSON: message {}: \"content\" is missing or not a string", i));
    }
    Message msg;
    msg.role = *role;
    msg.content = content->get<std::string>();
    msg.author_name = optional_string(m, "name", i);
    msg.channel = optional_string(m, "channel", i);
    msg.recipient = optional_string(m, "recipient", i);
    msg.content_type = optional_string(m, "content_type", i);
    if (msg.role == Role::kTool && msg.author_name.empty()) {
      throw Error(fmt::format("conversation JSON: message {}: a tool message needs \"name\"", i));
    }
    out.messages.push_back(std::move(msg));
  }
  return out;
}

}  // namespace gptoss::tok
