// server.h — `gptoss serve`: the OpenAI-compatible HTTP server on cpp-httplib (Debian's
// libcpp-httplib-dev). Routes: POST /v1/chat/completions, /v1/completions, /v1/responses;
// GET /v1/models, /health, /metrics. The engine is batch 1: requests wait in arrival order in a
// queue of --max-queue places (full: 429 with Retry-After; shutting down: 503) and run one at a
// time; a streaming client that goes away stops its generation at the next token. Consecutive
// requests share the KV cache through Session::extend (a conversation that grows reuses its
// prefix). Every refusal is OpenAI's error JSON (host/server/openai.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "host/server/metrics.h"
#include "host/server/openai.h"

namespace httplib {
class Server;
}
namespace gptoss::cli {
class Session;
}

namespace gptoss::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port (bind() returns it)
  std::string api_key;        // empty: none asked
  int max_queue = 64;         // requests waiting for the engine (besides the running one)
  size_t max_body = 8 << 20;  // bytes; larger bodies get 413
  int threads = 72;           // HTTP worker threads (connections served at once)
  std::string model_name = "gpt-oss";
  Defaults defaults;
  bool log = true;            // one line per request on stderr
};

// The batch-1 engine's queue: tickets in arrival order; the front one runs.
class EngineQueue {
 public:
  explicit EngineQueue(int max_waiting) : max_waiting_(max_waiting) {}
  // A place in the line, or 0 when the line is full or the server is stopping.
  uint64_t enter();
  // Waits until `ticket` is at the front; false when the server stops first.
  bool wait(uint64_t ticket);
  // Leaves the line (running or not).
  void leave(uint64_t ticket);
  void stop();
  int waiting() const;  // not counting the running one
  bool busy() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint64_t> line_;
  uint64_t next_ = 1;
  uint64_t running_ = 0;
  int max_waiting_;
  bool stopping_ = false;
};

class Server {
 public:
  Server(cli::Session& session, ServerOptions options);
  ~Server();
  // Binds the listening socket; returns the port (options.port, or the one chosen for 0).
  // Throws gptoss::Error naming the address when it cannot.
  int bind();
  // Serves until stop(); the request being served finishes first.
  void run();
  // Safe from any thread (the signal thread): stops accepting, refuses the queued requests (503),
  // lets the running one finish.
  void stop();
  Metrics& metrics() { return metrics_; }

 private:
  void routes();
  struct Ticket;

  cli::Session& session_;
  ServerOptions o_;
  std::unique_ptr<httplib::Server> http_;
  EngineQueue queue_;
  Metrics metrics_;
  std::atomic<double> mean_request_s_{1.0};  // for Retry-After
  std::atomic<bool> stop_requested_{false}, run_called_{false};
  std::mutex engine_mu_;                     // held while a request runs on the session
};

}  // namespace gptoss::server
