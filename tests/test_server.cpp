// test_server.cpp — `gptoss serve` through httplib's client on an ephemeral loopback port, on the
// tiny synthetic shape on the CPU (tag [server]): chat completions whole and streamed (the same
// text for the same seed, [DONE], usage with cached_tokens), prefix reuse of the KV cache shown by
// the prefill counters, completions, models, health, metrics; every bad request answered with
// OpenAI's error JSON while the server keeps serving (malformed JSON, wrong types, a prompt past
// the context, 401, 413, 404, 429 with Retry-After); a client gone mid-stream frees the engine;
// 32 concurrent clients; a soak with the RSS steady. The tiny shape decodes a few tokens a second
// here, so replies are kept to a few tokens.
#include <atomic>
#include <random>
#include <set>
#include <sstream>

#include "host/server/openai.h"
#include "host/text/harmony.h"
#include "tests/server_support.h"

using namespace gptoss;
using test::json;
using test::sse_events;
using test::TestServer;
using server::Job;

namespace {

json chat_body(const std::string& user, int max_tokens, uint64_t seed, bool stream = false) {
  return {{"model", "gpt-oss"},
          {"messages", json::array({{{"role", "user"}, {"content", user}}})},
          {"max_tokens", max_tokens},
          {"temperature", 1.0},
          {"seed", seed},
          {"stream", stream}};
}

// The error JSON of `r`: status, and the message.
std::string error_of(const httplib::Result& r, int status) {
  REQUIRE(r);
  INFO("body: " << r->body);
  CHECK(r->status == status);
  const json j = json::parse(r->body);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].is_string());
  CHECK(j["error"]["type"].is_string());
  return j["error"]["message"].get<std::string>();
}

}  // namespace

TEST_CASE("serve: chat completions whole and streamed, prefix reuse, completions, models, metrics",
          "[server][tiny]") {
  cli::Session& session = test::tiny_session();
  TestServer server(session, {});
  std::mt19937_64 g{std::random_device{}()};
  const uint64_t seed = g() % 1000000;
  const std::string user = "hello " + std::to_string(g() % 1000);

  // Whole.
  auto r = server.post("/v1/chat/completions", chat_body(user, 3, seed));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const json a = json::parse(r->body);
  CHECK(a["object"] == "chat.completion");
  CHECK(a["model"] == "gpt-oss");
  CHECK(a["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  const json& choice = a["choices"][0];
  CHECK(choice["message"]["role"] == "assistant");
  CHECK(choice["finish_reason"] == "length");  // random weights: no <|return|> in 3 tokens
  const std::string content = choice["message"]["content"].get<std::string>();
  // The prompt as harmony renders it.
  tok::Conversation conv;
  conv.messages.push_back({tok::Role::kUser, user});
  const size_t prompt_tokens = tok::render_conversation(session.tokenizer(), conv).size();
  CHECK(a["usage"]["prompt_tokens"] == prompt_tokens);
  CHECK(a["usage"]["completion_tokens"] == 3);
  CHECK(a["usage"]["total_tokens"] == prompt_tokens + 3);

  // The same request again: the whole prompt but its last token comes from the KV cache, and the
  // same seed gives the same text.
  const double prefill0 = server.metric("gptoss_prefill_positions_total");
  r = server.post("/v1/chat/completions", chat_body(user, 3, seed));
  REQUIRE(r);
  const json b = json::parse(r->body);
  CHECK(b["choices"][0]["message"]["content"] == content);
  CHECK(b["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt_tokens - 1);
  CHECK(server.metric("gptoss_prefill_positions_total") - prefill0 == 1);

  // Streamed: the same text in chunks, finish_reason on the last, usage when asked, [DONE].
  json sb = chat_body(user, 3, seed, true);
  sb["stream_options"] = {{"include_usage", true}};
  r = server.post("/v1/chat/completions", sb);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type").rfind("text/event-stream", 0) == 0);
  const std::vector<json> events = sse_events(r->body);
  REQUIRE(events.size() >= 4);
  CHECK(events.back() == "[DONE]");
  std::string streamed;
  json finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json& e = events[i];
    CHECK(e["object"] == "chat.completion.chunk");
    CHECK(e["id"] == events[0]["id"]);
    if (e["choices"].empty()) continue;
    const json& c = e["choices"][0];
    if (c["delta"].contains("content")) streamed += c["delta"]["content"].get<std::string>();
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  CHECK(events[0]["choices"][0]["delta"]["role"] == "assistant");
  CHECK(streamed == content);
  CHECK(finish == "length");
  const json& usage = events[events.size() - 2]["usage"];
  CHECK(usage["completion_tokens"] == 3);
  CHECK(usage["prompt_tokens"] == prompt_tokens);

  // A conversation that extends the previous one (the reply, then a new user message) reuses
  // the cache up to the reply's start: fewer positions run than its prompt has.
  json turn2 = chat_body(user, 1, seed);
  turn2["messages"].push_back({{"role", "assistant"}, {"content", content}});
  turn2["messages"].push_back({{"role", "user"}, {"content", "and then?"}});
  const double prefill1 = server.metric("gptoss_prefill_positions_total");
  r = server.post("/v1/chat/completions", turn2);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const json c2 = json::parse(r->body);
  const int p2 = c2["usage"]["prompt_tokens"];
  const int cached = c2["usage"]["prompt_tokens_details"]["cached_tokens"];
  CHECK(cached >= int(prompt_tokens));
  CHECK(server.metric("gptoss_prefill_positions_total") - prefill1 == p2 - cached);
  CHECK(server.metric("gptoss_prefix_reused_positions_total") > 0);

  // Completions: raw text, and token ids; echo.
  r = server.post("/v1/completions", {{"prompt", "Once upon"}, {"max_tokens", 2}, {"echo", true}});
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const json cp = json::parse(r->body);
  CHECK(cp["object"] == "text_completion");
  CHECK(cp["choices"][0]["text"].get<std::string>().rfind("Once upon", 0) == 0);
  CHECK(cp["usage"]["completion_tokens"] == 2);
  CHECK(cp["usage"]["prompt_tokens"] == session.tokenizer().encode("Once upon").size());
  r = server.post("/v1/completions", {{"prompt", {1, 2, 3}}, {"max_tokens", 1}, {"stream", true}});
  REQUIRE(r);
  const std::vector<json> ce = sse_events(r->body);
  REQUIRE(ce.size() >= 2);
  CHECK(ce.back() == "[DONE]");
  CHECK(ce[ce.size() - 2]["choices"][0]["finish_reason"] == "length");

  // Function tools reach the prompt: harmony's developer message with the functions namespace
  // (the rendering itself is checked in test_server_api.cpp), and a tool result goes back in.
  {
    json t = chat_body("hi", 1, seed);
    t["tools"] = json::array({{{"type", "function"}, {"function", {{"name", "w"}, {"description", "W"}}}}});
    r = server.post("/v1/chat/completions", t);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const Job job = server::parse_chat_request(t.dump(), {});
    CHECK(job.conversation.developer_tools.find("type w = () => any;") != std::string::npos);
    const size_t with_tools = tok::render_conversation(session.tokenizer(), job.conversation).size();
    CHECK(json::parse(r->body)["usage"]["prompt_tokens"] == with_tools);
    t["tool_choice"] = "none";  // the tools are not offered: the plain prompt
    r = server.post("/v1/chat/completions", t);
    REQUIRE(r);
    CHECK(json::parse(r->body)["usage"]["prompt_tokens"] < with_tools);
  }

  // Models, health, metrics.
  r = server.client().Get("/v1/models");
  REQUIRE(r);
  const json models = json::parse(r->body);
  CHECK(models["object"] == "list");
  CHECK(models["data"][0]["id"] == "gpt-oss");
  CHECK(models["data"][0]["max_model_len"] == 128);
  r = server.client().Get("/v1/models/gpt-oss");
  REQUIRE(r);
  CHECK(r->status == 200);
  r = server.client().Get("/health");
  REQUIRE(r);
  CHECK(json::parse(r->body)["status"] == "ok");
  r = server.client().Get("/metrics");
  REQUIRE(r);
  for (const char* m : {"gptoss_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 6",
                        "# TYPE gptoss_ttft_seconds histogram", "gptoss_tpot_seconds_count",
                        "gptoss_queue_depth 0", "gptoss_completion_tokens_total 15"}) {
    CHECK_THAT(r->body, Catch::Contains(m));
  }
}

TEST_CASE("serve: bad requests get OpenAI's error JSON and the server keeps serving",
          "[server][tiny]") {
  cli::Session& session = test::tiny_session();
  server::ServerOptions o;
  o.api_key = "sk-test-" + std::to_string(std::random_device{}());
  o.max_queue = 0;  // the running request only: a second one is refused
  o.max_body = 64 << 10;
  TestServer server(session, o);
  const std::string chat = "/v1/chat/completions";
  auto post_raw = [&](const std::string& body) {
    return server.client().Post(chat.c_str(), body, "application/json");
  };

  CHECK_THAT(error_of(post_raw("{\"messages\": [}"), 400), Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of(post_raw("[1, 2]"), 400), Catch::Contains("must be a JSON object"));
  CHECK_THAT(error_of(post_raw(""), 400), Catch::Contains("not valid JSON"));
  const json good = chat_body("hi", 1, 1);
  struct Bad {
    const char* field;
    json value;
    const char* message;
  };
  for (const Bad& b : std::vector<Bad>{
           {"temperature", "hot", "'temperature' must be a number, not a string"},
           {"temperature", -1, "temperature -1"},
           {"top_p", 2, "top_p 2"},
           {"max_tokens", 0, "'max_tokens' must be at least 1"},
           {"max_tokens", 1.5, "'max_tokens' must be an integer"},
           {"seed", "x", "'seed' must be an integer"},
           {"stream", "yes", "'stream' must be a boolean"},
           {"stop", 3, "'stop' must be a string or an array of strings"},
           {"messages", "hi", "'messages' must be an array"},
           {"messages", json::array(), "'messages' is empty"},
           {"messages", json::array({{{"role", "robot"}, {"content", "x"}}}), "'messages[0].role' robot"},
           {"messages", json::array({{{"role", 5}}}), "'messages[0].role' must be a string"},
           {"messages", json::array({{{"role", "user"}, {"content", 5}}}), "'messages[0].content' must be"},
           {"messages", json::array({{{"role", "tool"}, {"content", "x"}}}), "tool_call_id"},
           {"reasoning_effort", "max", "low, medium or high"},
           {"tools", "x", "'tools' must be an array"},
           {"tools", json::array({{{"type", "function"}, {"function", {{"name", "a b"}}}}}), "may hold only"},
           {"tool_choice", "required", "not supported"},
           {"n", 2, "'n' 2 is not supported"},
           {"logprobs", true, "'logprobs' is not supported"},
       }) {
    json body = good;
    body[b.field] = b.value;
    if (std::string(b.field) == "tool_choice") body["tools"] = json::array();
    INFO(b.field << " = " << b.value.dump());
    const std::string msg = error_of(server.post(chat, body), 400);
    CHECK_THAT(msg, Catch::Contains(b.message));
  }
  CHECK_THAT(error_of(server.post(chat, {{"max_tokens", 1}}), 400), Catch::Contains("'messages' is missing"));
  CHECK_THAT(error_of(server.post("/v1/completions", {{"prompt", {1, -2}}}), 400),
             Catch::Contains("not a token id"));
  CHECK_THAT(error_of(server.post("/v1/completions", {{"prompt", {201088}}}), 400),
             Catch::Contains("outside the model's vocabulary"));
  CHECK_THAT(error_of(server.post("/v1/responses", {{"input", 3}}), 400), Catch::Contains("'input' must be"));

  // A prompt longer than the context: 400 naming both numbers.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word" + std::to_string(i) + " ";
  auto r = server.post(chat, chat_body(long_text, 1, 1));
  const std::string ctx = error_of(r, 400);
  CHECK_THAT(ctx, Catch::Contains("the context holds 128"));
  const size_t n = tok::render_conversation(session.tokenizer(), [&] {
                     tok::Conversation c;
                     c.messages.push_back({tok::Role::kUser, long_text});
                     return c;
                   }()).size();
  CHECK_THAT(ctx, Catch::Contains("has " + std::to_string(n) + " tokens"));
  CHECK(json::parse(r->body)["error"]["code"] == "context_length_exceeded");

  // API key: none, wrong (401); /health needs none.
  {
    httplib::Client c("127.0.0.1", server.port);
    CHECK_THAT(error_of(c.Post(chat.c_str(), good.dump(), "application/json"), 401),
               Catch::Contains("no API key"));
    c.set_bearer_token_auth("sk-wrong");
    CHECK_THAT(error_of(c.Get("/v1/models"), 401), Catch::Contains("wrong"));
    auto h = c.Get("/health");
    REQUIRE(h);
    CHECK(h->status == 200);
  }
  // A body past --max-body: 413. An unknown route: 404.
  {
    json big = good;
    big["messages"][0]["content"] = std::string(70 << 10, 'a');
    CHECK_THAT(error_of(server.post(chat, big), 413), Catch::Contains("larger than 65536 bytes"));
    CHECK_THAT(error_of(server.client().Get("/v1/nothing"), 404), Catch::Contains("no route GET /v1/nothing"));
    // A path that decodes to bytes that are not UTF-8: still a JSON answer (replaced characters).
    CHECK_THAT(error_of(server.client().Get("/v1/%FF%FE"), 404), Catch::Contains("no route GET /v1/"));
  }

  // A stream holds the engine: another request gets 429 with Retry-After (queue of 0). The
  // client goes away mid-stream: the engine is freed within a couple of tokens, not after 40.
  {
    test::RawConnection conn(server.port);
    conn.post(chat, chat_body("hi", 40, 2, true).dump(), "Authorization: Bearer " + o.api_key + "\r\n");
    const std::string head = conn.read_until("data: ");
    REQUIRE_THAT(head, Catch::Contains("200"));
    auto busy = server.post(chat, good);
    CHECK_THAT(error_of(busy, 429), Catch::Contains("the queue is full"));
    CHECK(std::stoi(busy->get_header_value("Retry-After")) >= 1);
    CHECK(json::parse(busy->body)["error"]["type"] == "rate_limit_error");
    conn.read_until(":\n\n");  // generating
    conn.close();
  }
  // The engine is freed at the write after the close: wait for it (a few tokens at most).
  for (int i = 0; i < 600 && json::parse(server.client().Get("/health")->body)["busy"] == true; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  r = server.post(chat, good);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(server.metric("gptoss_client_disconnects_total") == 1);
  // 39 tokens would be generated had the stream run to its end: far fewer were.
  CHECK(server.metric("gptoss_completion_tokens_total") < 12);
  auto h = server.client().Get("/health");
  REQUIRE(h);
  CHECK(h->status == 200);
}

TEST_CASE("serve: 32 concurrent clients, none lost or corrupted; a soak keeps the RSS steady",
          "[server][tiny]") {
  cli::Session& session = test::tiny_session();
  TestServer server(session, {});
  // Warm the cache with the prompt: each request then runs one prompt position and one token.
  const json body = chat_body("same", 1, 3);
  auto first = server.post("/v1/chat/completions", body);
  REQUIRE(first);
  REQUIRE(first->status == 200);
  const std::string expected = json::parse(first->body)["choices"][0]["message"]["content"];

  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> clients;
  std::mutex mu;
  std::set<std::string> ids;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&, i] {
      json b = body;
      b["stream"] = i % 2 == 1;
      auto r = server.client().Post("/v1/chat/completions", b.dump(), "application/json");
      if (!r || r->status != 200) {
        ++bad;
        return;
      }
      std::string text, id;
      if (i % 2 == 1) {
        const std::vector<json> ev = sse_events(r->body);
        if (ev.empty() || ev.back() != "[DONE]") {
          ++bad;
          return;
        }
        id = ev[0]["id"];
        for (size_t k = 0; k + 1 < ev.size(); ++k) {
          if (ev[k]["id"] != id) ++bad;
          const json& d = ev[k]["choices"][0]["delta"];
          if (d.contains("content")) text += d["content"].get<std::string>();
        }
      } else {
        const json j = json::parse(r->body);
        id = j["id"];
        text = j["choices"][0]["message"]["content"];
      }
      // The same seed and prompt: the same token, whatever ran before.
      if (text != expected) {
        ++bad;
        return;
      }
      std::lock_guard lock(mu);
      ids.insert(id);
      ++ok;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(bad == 0);
  CHECK(ok == 32);
  CHECK(ids.size() == 32);

  // Soak: 300 cheap requests (health, models, 1-token completions, bad JSON); the RSS after
  // the first 100 (allocators warmed up) and at the end stay within 8 MiB.
  long rss_warm = 0;
  for (int i = 0; i < 300; ++i) {
    if (i == 100) rss_warm = test::rss_kib();
    auto c = server.client();
    httplib::Result r = i % 4 == 0   ? c.Get("/health")
                        : i % 4 == 1 ? c.Get("/v1/models")
                        : i % 4 == 2 ? c.Post("/v1/completions",
                                              json{{"prompt", {7}}, {"max_tokens", 1}}.dump(),
                                              "application/json")
                                     : c.Post("/v1/chat/completions", "{bad", "application/json");
    REQUIRE(r);
    REQUIRE(r->status == (i % 4 == 3 ? 400 : 200));
  }
  const long rss_end = test::rss_kib();
  INFO("RSS after 100 requests " << rss_warm << " KiB, after 300 " << rss_end << " KiB");
  CHECK(rss_end - rss_warm < 8 * 1024);
}
