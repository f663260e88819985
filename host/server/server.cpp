#include "host/server/server.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "host/cli/session.h"
#include "host/error.h"
#include "host/server/generate.h"
#include "host/server/replies.h"

namespace gptoss::server {

using nlohmann::json;

// ---- EngineQueue ---------------------------------------------------------------------------------

uint64_t EngineQueue::enter() {
  std::lock_guard lock(mu_);
  if (stopping_) return 0;
  // The front of the line runs (or is about to); the others wait.
  if (!line_.empty() && int(line_.size()) - 1 >= max_waiting_) return 0;
  line_.push_back(next_);
  return next_++;
}

bool EngineQueue::wait(uint64_t ticket) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (!line_.empty() && line_.front() == ticket); });
  if (line_.front() != ticket) return false;  // stopping, and not our turn
  running_ = ticket;
  return true;
}

void EngineQueue::leave(uint64_t ticket) {
  {
    std::lock_guard lock(mu_);
    const auto it = std::find(line_.begin(), line_.end(), ticket);
    if (it != line_.end()) line_.erase(it);
    if (running_ == ticket) running_ = 0;
  }
  cv_.notify_all();
}

void EngineQueue::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

int EngineQueue::waiting() const {
  std::lock_guard lock(mu_);
  return std::max(0, int(line_.size()) - 1);
}

bool EngineQueue::busy() const {
  std::lock_guard lock(mu_);
  return running_ != 0;
}

// A place in the queue, left when the last owner (the handler, or the stream's provider) goes.
struct Server::Ticket {
  EngineQueue& queue;
  uint64_t id;
  Ticket(EngineQueue& q, uint64_t i) : queue(q), id(i) {}
  ~Ticket() { queue.leave(id); }
};

// ---- Server --------------------------------------------------------------------------------------

namespace {

const char* endpoint_name(Endpoint e) {
  switch (e) {
    case Endpoint::kChat: return "/v1/chat/completions";
    case Endpoint::kCompletions: return "/v1/completions";
    case Endpoint::kResponses: return "/v1/responses";
  }
  return "";
}

// The metrics label of a request path: a route, or "other" (the paths clients send are not
// labels: they would grow /metrics without bound).
std::string route_label(const std::string& path) {
  for (const char* r : {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/models",
                        "/health", "/metrics"}) {
    if (path == r) return r;
  }
  return path.rfind("/v1/models/", 0) == 0 ? "/v1/models" : "other";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_json(e).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

}  // namespace

Server::Server(cli::Session& session, ServerOptions options)
    : session_(session), o_(std::move(options)), http_(std::make_unique<httplib::Server>()),
      queue_(o_.max_queue) {
  session_.tokenizer();  // loaded once, before the worker threads read it
  const int threads = std::max(4, o_.threads);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(o_.max_body);
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(30, 0);
  routes();
}

Server::~Server() = default;

int Server::bind() {
  int port = o_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(o_.host);
    if (port < 0) port = -1;
  } else if (!http_->bind_to_port(o_.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)",
                            o_.host, o_.port),
                "choose another --port, or --host 127.0.0.1");
  }
  o_.port = port;
  return port;
}

void Server::run() {
  if (stop_requested_) return;
  run_called_ = true;
  http_->listen_after_bind();
  run_called_ = false;
}

void Server::stop() {
  stop_requested_ = true;
  queue_.stop();
  // httplib's stop() does nothing before its accept loop runs: a signal right after run() was
  // called waits (at most 5 s) for the loop to start.
  for (int i = 0; i < 500 && run_called_ && !http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  http_->stop();
}

void Server::routes() {
  // API key: every route but /health.
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (o_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth != "Bearer " + o_.api_key) {
      send_error(res, ApiError(401,
                               auth.empty() ? "no API key: send the header Authorization: Bearer KEY"
                                            : "the API key is wrong",
                               "", "invalid_request_error", "invalid_api_key"));
      metrics_.request(route_label(req.path), 401);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // What httplib answers itself (404, 413, 400 for a bad request line) gets OpenAI's shape too.
  http_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message;
    switch (res.status) {
      case 404: message = fmt::format("no route {} {}", req.method, req.path); break;
      case 413:
        message = fmt::format("the request body is larger than {} bytes (serve --max-body)", o_.max_body);
        break;
      default: message = fmt::format("HTTP {}", res.status);
    }
    res.set_content(error_json(ApiError(res.status, message)).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics_.request(route_label(req.path), res.status);
  });
  http_->set_exception_handler([this](const httplib::Request& req, httplib::Response& res,
                                      std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what, "", "server_error"));
    metrics_.request(route_label(req.path), 500);
  });

  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    json j = {{"status", "ok"}, {"model", o_.model_name}, {"queue_depth", queue_.waiting()},
              {"busy", queue_.busy()}};
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics_.request("/health", 200);
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.queue(queue_.waiting(), queue_.busy());
    res.set_content(metrics_.prometheus(), "text/plain; version=0.0.4");
    metrics_.request("/metrics", 200);
  });
  auto model_json = [this] {
    return json{{"id", o_.model_name},      {"object", "model"}, {"created", 0},
                {"owned_by", "gptoss"},     {"max_model_len", session_.max_context()}};
  };
  http_->Get("/v1/models", [this, model_json](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"object", "list"}, {"data", json::array({model_json()})}}.dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
    metrics_.request("/v1/models", 200);
  });
  http_->Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != o_.model_name) {
      send_error(res, ApiError(404, fmt::format("no model {} (this server has {})",
                                                std::string(req.matches[1]), o_.model_name),
                               "model", "invalid_request_error", "model_not_found"));
    } else {
      res.set_content(model_json().dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    }
    metrics_.request("/v1/models", res.status);
  });

  auto generation = [this](Endpoint ep) {
    return [this, ep](const httplib::Request& req, httplib::Response& res) {
      const char* name = endpoint_name(ep);
      auto job = std::make_shared<Job>();
      std::vector<int> ids;
      try {
        *job = ep == Endpoint::kChat          ? parse_chat_request(req.body, o_.defaults)
               : ep == Endpoint::kCompletions ? parse_completion_request(req.body, o_.defaults)
                                              : parse_responses_request(req.body, o_.defaults);
        ids = prompt_ids(session_, *job);
      } catch (const ApiError& e) {
        send_error(res, e);
        metrics_.request(name, e.status);
        if (o_.log) fmt::print(stderr, "POST {} {}: {}\n", name, e.status, e.what());
        return;
      }
      const uint64_t id = queue_.enter();
      if (id == 0) {
        const int waiting = queue_.waiting();
        const int retry = std::max(1, int(std::ceil(mean_request_s_.load() * (waiting + 1))));
        const bool stopping = !http_->is_running();
        res.set_header("Retry-After", std::to_string(retry));
        send_error(res, stopping ? ApiError(503, "the server is shutting down", "", "server_error")
                                 : ApiError(429,
                                            fmt::format("the queue is full ({} requests wait for "
                                                        "the engine; serve --max-queue {}); retry "
                                                        "after {} s",
                                                        waiting, o_.max_queue, retry),
                                            "", "rate_limit_error", "queue_full"));
        metrics_.request(name, res.status);
        return;
      }
      auto ticket = std::make_shared<Ticket>(queue_, id);
      metrics_.queue(queue_.waiting(), queue_.busy());
      const std::string model = job->model.empty() ? o_.model_name : job->model;

      // Runs the job on the engine; on_delta false: the client went away.
      auto run = [this, job, ids, name](const std::function<bool(const Delta&)>& on_delta) {
        std::lock_guard lock(engine_mu_);
        metrics_.queue(queue_.waiting(), true);
        const Outcome o = generate(session_, *job, ids, on_delta);
        metrics_.generation(o.prompt_tokens, o.completion_tokens, o.prefill_run, o.cached_tokens);
        metrics_.ttft(o.ttft_s);
        if (o.completion_tokens > 1) metrics_.tpot(o.decode_s / (o.completion_tokens - 1));
        const double total = o.ttft_s + o.decode_s;
        mean_request_s_ = 0.8 * mean_request_s_.load() + 0.2 * total;
        if (o.finish_reason.empty()) metrics_.disconnect();
        if (o_.log) {
          fmt::print(stderr, "POST {} {}: {} prompt tokens ({} from the cache), {} generated, {}, {:.2f} s\n",
                     name, job->stream ? "stream" : "200", o.prompt_tokens, o.cached_tokens,
                     o.completion_tokens,
                     o.finish_reason.empty() ? "client gone" : "finish " + o.finish_reason, total);
        }
        return o;
      };

      if (!job->stream) {
        if (!queue_.wait(id)) {
          send_error(res, ApiError(503, "the server is shutting down", "", "server_error"));
          metrics_.request(name, 503);
          return;
        }
        const Outcome o = run([](const Delta&) { return true; });
        res.set_content(Reply(*job, model).body(o).dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
        metrics_.request(name, 200);
        return;
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, job, ticket, run, model, name](size_t, httplib::DataSink& sink) {
            auto write = [&sink](const std::string& s) {
              return s.empty() || (sink.is_writable() && sink.write(s.data(), s.size()));
            };
            if (!queue_.wait(ticket->id)) {
              metrics_.request(name, 503);
              write(Reply::error_event(ApiError(503, "the server is shutting down", "", "server_error")));
              sink.done();
              return true;
            }
            Reply reply(*job, model);
            try {
              if (write(reply.start_events())) {
                // A token without visible text writes an SSE comment: a client that went away
                // then fails the write within two tokens and the engine is freed.
                const Outcome o = run([&](const Delta& d) {
                  const std::string events = reply.delta_events(d);
                  return write(events.empty() ? std::string(":\n\n") : events);
                });
                if (!o.finish_reason.empty()) write(reply.end_events(o));
              }
            } catch (const std::exception& e) {
              write(Reply::error_event(ApiError(500, std::string("internal error: ") + e.what(), "",
                                                "server_error")));
            }
            metrics_.request(name, 200);
            sink.done();
            return true;
          },
          [ticket](bool) {});
    };
  };
  http_->Post("/v1/chat/completions", generation(Endpoint::kChat));
  http_->Post("/v1/completions", generation(Endpoint::kCompletions));
  http_->Post("/v1/responses", generation(Endpoint::kResponses));
}

}  // namespace gptoss::server
