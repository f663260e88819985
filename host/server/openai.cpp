#include "host/server/openai.h"

#include <atomic>
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "host/error.h"

namespace gptoss::server {

using json = nlohmann::ordered_json;

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const json& v, std::string_view want) {
  throw ApiError(400, fmt::format("'{}' must be {}, not {}", param, want, type_name(v)), param);
}

// The field of `o` when present and not null.
const json* field(const json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& o, const char* name) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, *v, "a number");
  return v->get<double>();
}

std::optional<int64_t> integer(const json& o, const char* name) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() && !v->is_number_unsigned()) wrong_type(name, *v, "an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) {
    throw ApiError(400, fmt::format("'{}' is too large", name), name);
  }
  return v->get<int64_t>();
}

std::optional<bool> boolean(const json& o, const char* name) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, *v, "a boolean");
  return v->get<bool>();
}

std::optional<std::string> string(const json& o, const char* name, const std::string& param) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(param, *v, "a string");
  return v->get<std::string>();
}

// Text content: a string, or an array of parts {type: "text"|"input_text"|"output_text", text}.
std::string content_text(const json& v, const std::string& param) {
  if (v.is_null()) return {};
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(param, v, "a string or an array of text parts");
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = fmt::format("{}[{}]", param, i);
    if (!v[i].is_object()) wrong_type(p, v[i], "an object");
    const auto type = string(v[i], "type", p + ".type").value_or("text");
    if (type != "text" && type != "input_text" && type != "output_text" && type != "reasoning_text" &&
        type != "summary_text") {
      throw ApiError(400, fmt::format("'{}.type' {} is not supported (text parts only)", p, type),
                     p + ".type");
    }
    const auto text = string(v[i], "text", p + ".text");
    if (!text) throw ApiError(400, fmt::format("'{}.text' is missing", p), p + ".text");
    out += *text;
  }
  return out;
}

// Sampling, max tokens, stop and stream: the fields every endpoint shares.
void parse_common(const json& o, const Defaults& d, Job& job, const char* max_name) {
  job.sampling = d.sampling;
  if (auto t = number(o, "temperature")) job.sampling.temperature = float(*t);
  if (auto p = number(o, "top_p")) job.sampling.top_p = float(*p);
  if (auto k = integer(o, "top_k")) job.sampling.top_k = *k < 0 ? 0 : int(std::min<int64_t>(*k, INT32_MAX));
  if (auto m = number(o, "min_p")) job.sampling.min_p = float(*m);
  if (auto s = integer(o, "seed")) job.sampling.seed = uint64_t(*s);
  try {
    sampling::validate(job.sampling);
  } catch (const Error& e) {
    // The sampler names the CLI's options (--temp, --top-p); the request's names are these.
    std::string msg = e.what();
    for (auto [cli, api] : {std::pair{"--temp", "temperature"}, {"--top-p", "top_p"},
                            {"--top-k", "top_k"}, {"--min-p", "min_p"}}) {
      if (const size_t at = msg.find(cli); at != std::string::npos) msg.replace(at, strlen(cli), api);
    }
    throw ApiError(400, msg);
  }
  job.max_tokens = d.max_tokens;
  for (const char* name : {max_name, "max_tokens"}) {
    if (auto n = integer(o, name)) {
      if (*n < 1) throw ApiError(400, fmt::format("'{}' must be at least 1, not {}", name, *n), name);
      job.max_tokens = int(std::min<int64_t>(*n, INT32_MAX));
      break;
    }
  }
  if (const json* s = field(o, "stop")) {
    if (s->is_string()) {
      job.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (size_t i = 0; i < s->size(); ++i) {
        if (!(*s)[i].is_string()) wrong_type(fmt::format("stop[{}]", i), (*s)[i], "a string");
        job.stop.push_back((*s)[i].get<std::string>());
      }
    } else {
      wrong_type("stop", *s, "a string or an array of strings");
    }
    if (job.stop.size() > 16) throw ApiError(400, "'stop' has more than 16 strings", "stop");
  }
  if (auto n = integer(o, "n"); n && *n != 1) {
    throw ApiError(400, fmt::format("'n' {} is not supported: one choice per request (batch 1)", *n), "n");
  }
  if (const json* lp = field(o, "logprobs"); lp && !(lp->is_boolean() && !lp->get<bool>())) {
    throw ApiError(400, "'logprobs' is not supported yet", "logprobs");
  }
  job.stream = boolean(o, "stream").value_or(false);
  if (const json* so = field(o, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", *so, "an object");
    job.include_usage = boolean(*so, "include_usage").value_or(false);
  }
  job.model = string(o, "model", "model").value_or("");
}

tok::ReasoningEffort effort(const std::string& text, const std::string& param) {
  if (text == "low") return tok::ReasoningEffort::kLow;
  if (text == "medium") return tok::ReasoningEffort::kMedium;
  if (text == "high") return tok::ReasoningEffort::kHigh;
  throw ApiError(400, fmt::format("'{}' must be low, medium or high, not {}", param, text), param);
}

// tools + tool_choice (chat and responses).
void parse_tools(const json& o, Job& job) {
  const json* tools = field(o, "tools");
  if (!tools) return;
  bool enabled = true;
  if (const json* choice = field(o, "tool_choice")) {
    if (choice->is_string()) {
      const std::string c = choice->get<std::string>();
      if (c == "none") {
        enabled = false;
      } else if (c != "auto") {
        throw ApiError(400, fmt::format("'tool_choice' {} is not supported (none or auto)", c),
                       "tool_choice");
      }
    } else {
      throw ApiError(400, "'tool_choice' must be \"none\" or \"auto\" (forcing a function is not "
                          "supported)", "tool_choice");
    }
  }
  const std::string rendered = render_functions(*tools, "tools");
  if (enabled && !rendered.empty()) {
    job.conversation.developer_tools = rendered;
    job.conversation.system.function_tools = true;
    job.tools = true;
  }
}

tok::Message message(tok::Role role, std::string content, std::string author = {},
                     std::string channel = {}, std::string recipient = {},
                     std::string content_type = {}) {
  tok::Message m;
  m.role = role;
  m.content = std::move(content);
  m.author_name = std::move(author);
  m.channel = std::move(channel);
  m.recipient = std::move(recipient);
  m.content_type = std::move(content_type);
  return m;
}

std::string ts_type(const json& schema, int depth);

std::string ts_object(const json& schema, int depth) {
  const json* props = field(schema, "properties");
  if (!props || !props->is_object() || props->empty()) return "object";
  std::vector<std::string> required;
  if (const json* r = field(schema, "required"); r && r->is_array()) {
    for (const json& n : *r) {
      if (n.is_string()) required.push_back(n.get<std::string>());
    }
  }
  std::string out = "{\n";
  for (auto it = props->begin(); it != props->end(); ++it) {
    const json& p = it.value();
    std::string default_note;
    if (p.is_object()) {
      if (const json* d = field(p, "description"); d && d->is_string()) {
        out += "// " + d->get<std::string>() + "\n";
      }
      if (const json* d = field(p, "default")) {
        default_note = " // default: " + (d->is_string() ? d->get<std::string>() : d->dump());
      }
    }
    const bool req = std::find(required.begin(), required.end(), it.key()) != required.end();
    out += it.key() + (req ? ": " : "?: ") + ts_type(p, depth + 1) + "," + default_note + "\n";
  }
  return out + "}";
}

std::string ts_type(const json& schema, int depth) {
  if (depth > 16 || !schema.is_object()) return "any";
  if (const json* e = field(schema, "enum"); e && e->is_array() && !e->empty()) {
    std::string out;
    for (const json& v : *e) out += (out.empty() ? "" : " | ") + v.dump();
    return out;
  }
  const json* t = field(schema, "type");
  if (!t || !t->is_string()) return "any";
  const std::string type = t->get<std::string>();
  if (type == "string") return "string";
  if (type == "integer" || type == "number") return "number";
  if (type == "boolean") return "boolean";
  if (type == "null") return "null";
  if (type == "array") {
    const json* items = field(schema, "items");
    return (items ? ts_type(*items, depth + 1) : "any") + "[]";
  }
  if (type == "object") return ts_object(schema, depth);
  return "any";
}

}  // namespace

nlohmann::json error_json(const ApiError& e) {
  using nlohmann::json;
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

json parse_body(std::string_view body) {
  json o;
  try {
    o = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!o.is_object()) {
    throw ApiError(400, fmt::format("the body must be a JSON object, not {}", type_name(o)));
  }
  return o;
}

std::string new_id(std::string_view prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = std::random_device{}() ^
                               uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  const uint64_t n = counter.fetch_add(1);
  return fmt::format("{}{:016x}{:08x}", prefix, base * 6364136223846793005ull + n, uint32_t(n));
}

std::string render_functions(const json& tools, const std::string& param) {
  if (!tools.is_array()) wrong_type(param, tools, "an array");
  if (tools.empty()) return {};
  std::string out = "## functions\n\nnamespace functions {\n\n";
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string p = fmt::format("{}[{}]", param, i);
    const json& t = tools[i];
    if (!t.is_object()) wrong_type(p, t, "an object");
    const auto type = string(t, "type", p + ".type").value_or("function");
    if (type != "function") {
      throw ApiError(400, fmt::format("'{}.type' {} is not supported (function tools only)", p, type),
                     p + ".type");
    }
    // Chat nests the definition under "function"; the Responses API has it flat.
    const json* f = field(t, "function");
    std::string fp = p + ".function";
    if (!f) {
      f = &t;
      fp = p;
    }
    if (!f->is_object()) wrong_type(fp, *f, "an object");
    const auto name = string(*f, "name", fp + ".name");
    if (!name || name->empty()) throw ApiError(400, fmt::format("'{}.name' is missing", fp), fp + ".name");
    for (char c : *name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
        throw ApiError(400, fmt::format("'{}.name' {} may hold only letters, digits, _ and -", fp, *name),
                       fp + ".name");
      }
    }
    if (auto d = string(*f, "description", fp + ".description"); d && !d->empty()) {
      out += "// " + *d + "\n";
    }
    const json* params = field(*f, "parameters");
    if (params && !params->is_object()) wrong_type(fp + ".parameters", *params, "an object");
    const std::string args = params ? ts_object(*params, 0) : "object";
    if (args == "object" && (!params || !field(*params, "properties"))) {
      out += "type " + *name + " = () => any;\n\n";
    } else {
      out += "type " + *name + " = (_: " + args + ") => any;\n\n";
    }
  }
  return out + "} // namespace functions";
}

Job parse_chat_request(std::string_view body, const Defaults& d) {
  const json o = parse_body(body);
  Job job;
  job.endpoint = Endpoint::kChat;
  parse_common(o, d, job, "max_completion_tokens");
  tok::Conversation& conv = job.conversation;
  conv.system.reasoning = d.reasoning;
  if (auto r = string(o, "reasoning_effort", "reasoning_effort")) {
    conv.system.reasoning = effort(*r, "reasoning_effort");
  }
  parse_tools(o, job);
  const json* msgs = field(o, "messages");
  if (!msgs) throw ApiError(400, "'messages' is missing", "messages");
  if (!msgs->is_array()) wrong_type("messages", *msgs, "an array");
  if (msgs->empty()) throw ApiError(400, "'messages' is empty", "messages");
  std::vector<std::pair<std::string, std::string>> call_names;  // tool_call id -> name
  for (size_t i = 0; i < msgs->size(); ++i) {
    const std::string p = fmt::format("messages[{}]", i);
    const json& m = (*msgs)[i];
    if (!m.is_object()) wrong_type(p, m, "an object");
    const auto role = string(m, "role", p + ".role");
    if (!role) throw ApiError(400, fmt::format("'{}.role' is missing", p), p + ".role");
    const json* c = field(m, "content");
    const std::string text = c ? content_text(*c, p + ".content") : std::string();
    if (*role == "system" || *role == "developer") {
      // harmony's system message is the model's own (identity, date, reasoning); OpenAI's
      // system and developer prompts are the developer message's instructions.
      if (!conv.developer_instructions.empty()) conv.developer_instructions += "\n\n";
      conv.developer_instructions += text;
    } else if (*role == "user") {
      conv.messages.push_back(message(tok::Role::kUser, text));
    } else if (*role == "assistant") {
      for (const char* rname : {"reasoning_content", "reasoning"}) {
        if (auto r = string(m, rname, p + "." + rname); r && !r->empty()) {
          conv.messages.push_back(message(tok::Role::kAssistant, *r, "", "analysis"));
          break;
        }
      }
      if (const json* calls = field(m, "tool_calls")) {
        if (!calls->is_array()) wrong_type(p + ".tool_calls", *calls, "an array");
        for (size_t k = 0; k < calls->size(); ++k) {
          const std::string cp = fmt::format("{}.tool_calls[{}]", p, k);
          const json& call = (*calls)[k];
          if (!call.is_object()) wrong_type(cp, call, "an object");
          const json* f = field(call, "function");
          if (!f || !f->is_object()) {
            throw ApiError(400, fmt::format("'{}.function' must be an object", cp), cp + ".function");
          }
          const auto name = string(*f, "name", cp + ".function.name");
          if (!name) throw ApiError(400, fmt::format("'{}.function.name' is missing", cp), cp + ".function.name");
          const auto args = string(*f, "arguments", cp + ".function.arguments").value_or("{}");
          if (auto id = string(call, "id", cp + ".id")) call_names.emplace_back(*id, *name);
          conv.messages.push_back(message(tok::Role::kAssistant, args, "", "commentary",
                                   "functions." + *name, "<|constrain|>json"));
        }
      }
      if (!text.empty()) conv.messages.push_back(message(tok::Role::kAssistant, text, "", "final"));
    } else if (*role == "tool") {
      std::string name = string(m, "name", p + ".name").value_or("");
      if (auto id = string(m, "tool_call_id", p + ".tool_call_id"); id && name.empty()) {
        for (const auto& [cid, cname] : call_names) {
          if (cid == *id) name = cname;
        }
      }
      if (name.empty()) {
        throw ApiError(400,
                       fmt::format("'{}': a tool message needs the 'tool_call_id' of an earlier "
                                   "assistant tool call (or a 'name')", p),
                       p + ".tool_call_id");
      }
      conv.messages.push_back(message(tok::Role::kTool, text, "functions." + name, "commentary", "assistant"));
    } else {
      throw ApiError(400,
                     fmt::format("'{}.role' {} is not one of system, developer, user, assistant, tool",
                                 p, *role),
                     p + ".role");
    }
  }
  return job;
}

Job parse_completion_request(std::string_view body, const Defaults& d) {
  const json o = parse_body(body);
  Job job;
  job.endpoint = Endpoint::kCompletions;
  parse_common(o, d, job, "max_tokens");
  job.echo = boolean(o, "echo").value_or(false);
  const json* p = field(o, "prompt");
  if (!p) throw ApiError(400, "'prompt' is missing", "prompt");
  if (p->is_string()) {
    job.prompt = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    for (size_t i = 0; i < p->size(); ++i) {
      if (!(*p)[i].is_number_integer() && !(*p)[i].is_number_unsigned()) {
        wrong_type(fmt::format("prompt[{}]", i), (*p)[i], "a token id (integer)");
      }
      const int64_t id = (*p)[i].get<int64_t>();
      if (id < 0 || id > INT32_MAX) {
        throw ApiError(400, fmt::format("'prompt[{}]' {} is not a token id", i, id), "prompt");
      }
      job.prompt_ids.push_back(int(id));
    }
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    job.prompt = (*p)[0].get<std::string>();
  } else {
    throw ApiError(400, "'prompt' must be a string or an array of token ids (one prompt per request)",
                   "prompt");
  }
  if (job.prompt.empty() && job.prompt_ids.empty()) throw ApiError(400, "'prompt' is empty", "prompt");
  return job;
}

Job parse_responses_request(std::string_view body, const Defaults& d) {
  const json o = parse_body(body);
  Job job;
  job.endpoint = Endpoint::kResponses;
  parse_common(o, d, job, "max_output_tokens");
  tok::Conversation& conv = job.conversation;
  conv.system.reasoning = d.reasoning;
  if (const json* r = field(o, "reasoning")) {
    if (!r->is_object()) wrong_type("reasoning", *r, "an object");
    if (auto e = string(*r, "effort", "reasoning.effort")) conv.system.reasoning = effort(*e, "reasoning.effort");
  }
  if (auto instr = string(o, "instructions", "instructions")) conv.developer_instructions = *instr;
  parse_tools(o, job);
  const json* input = field(o, "input");
  if (!input) throw ApiError(400, "'input' is missing", "input");
  if (input->is_string()) {
    conv.messages.push_back(message(tok::Role::kUser, input->get<std::string>()));
    return job;
  }
  if (!input->is_array()) wrong_type("input", *input, "a string or an array of items");
  std::vector<std::pair<std::string, std::string>> call_names;  // call_id -> name
  for (size_t i = 0; i < input->size(); ++i) {
    const std::string p = fmt::format("input[{}]", i);
    const json& it = (*input)[i];
    if (!it.is_object()) wrong_type(p, it, "an object");
    const std::string type = string(it, "type", p + ".type").value_or("message");
    if (type == "message") {
      const auto role = string(it, "role", p + ".role").value_or("");
      const json* c = field(it, "content");
      const std::string text = c ? content_text(*c, p + ".content") : std::string();
      if (role == "user") {
        conv.messages.push_back(message(tok::Role::kUser, text));
      } else if (role == "assistant") {
        conv.messages.push_back(message(tok::Role::kAssistant, text, "", "final"));
      } else if (role == "system" || role == "developer") {
        if (!conv.developer_instructions.empty()) conv.developer_instructions += "\n\n";
        conv.developer_instructions += text;
      } else {
        throw ApiError(400, fmt::format("'{}.role' {} is not one of user, assistant, system, developer", p, role),
                       p + ".role");
      }
    } else if (type == "reasoning") {
      std::string text;
      if (const json* c = field(it, "content")) {
        text = content_text(*c, p + ".content");
      } else if (const json* s = field(it, "summary")) {
        text = content_text(*s, p + ".summary");
      }
      if (!text.empty()) conv.messages.push_back(message(tok::Role::kAssistant, text, "", "analysis"));
    } else if (type == "function_call") {
      const auto name = string(it, "name", p + ".name");
      if (!name) throw ApiError(400, fmt::format("'{}.name' is missing", p), p + ".name");
      if (auto id = string(it, "call_id", p + ".call_id")) call_names.emplace_back(*id, *name);
      conv.messages.push_back(message(tok::Role::kAssistant,
                               string(it, "arguments", p + ".arguments").value_or("{}"), "",
                               "commentary", "functions." + *name, "<|constrain|>json"));
    } else if (type == "function_call_output") {
      const auto id = string(it, "call_id", p + ".call_id").value_or("");
      std::string name;
      for (const auto& [cid, cname] : call_names) {
        if (cid == id) name = cname;
      }
      if (name.empty()) {
        throw ApiError(400, fmt::format("'{}.call_id' {} names no earlier function_call item", p, id),
                       p + ".call_id");
      }
      const json* out = field(it, "output");
      const std::string text = !out ? "" : out->is_string() ? out->get<std::string>() : out->dump();
      conv.messages.push_back(message(tok::Role::kTool, text, "functions." + name, "commentary", "assistant"));
    } else {
      throw ApiError(400, fmt::format("'{}.type' {} is not supported (message, reasoning, "
                                      "function_call, function_call_output)", p, type),
                     p + ".type");
    }
  }
  if (conv.messages.empty()) throw ApiError(400, "'input' has no messages", "input");
  return job;
}

}  // namespace gptoss::server
