// serve_cli.cpp — `gptoss serve`: the OpenAI-compatible HTTP server (host/server/server.h) on the
// engine of generate and chat (host/cli/session.h). SIGINT and SIGTERM are taken by a thread of
// their own (sigwait): the server stops accepting, refuses what waits in the queue and lets the
// running request's stream finish, then exits 0.
#include <pthread.h>
#include <signal.h>

#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "host/cli/cli.h"
#include "host/cli/session.h"
#include "host/error.h"
#include "host/interrupt.h"
#include "host/server/server.h"
#include "host/text/harmony.h"

namespace gptoss::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  SamplingOptions sampling;
  server::ServerOptions server;
  std::string reasoning = "medium";
  int max_tokens = 512;
  int max_body_kib = 8192;
  bool quiet = false;
};

void run_serve(ServeOptions& o) {
  if (o.server.port < 0 || o.server.port > 65535) {
    throw Error(fmt::format("--port {}: must be in 0..65535 (0: any free port)", o.server.port));
  }
  if (o.server.max_queue < 0) throw Error(fmt::format("--max-queue {}: must be >= 0", o.server.max_queue));
  if (o.max_tokens <= 0) throw Error(fmt::format("--max-tokens {}: must be > 0", o.max_tokens));
  if (o.max_body_kib <= 0) throw Error(fmt::format("--max-body {}: must be > 0", o.max_body_kib));
  sampling::SamplingParams params;
  const uint64_t weights_seed = resolve_seeds(o.model, o.sampling, &params);
  o.server.defaults.sampling = params;
  o.server.defaults.max_tokens = o.max_tokens;
  o.server.defaults.reasoning = tok::parse_reasoning_effort(o.reasoning);
  o.server.max_body = size_t(o.max_body_kib) << 10;
  o.server.threads = std::min(256, o.server.max_queue + 8);
  o.server.log = !o.quiet;
  // SIGINT / SIGTERM go to the signal thread only (blocked here, before any thread starts: the CPU backend's
  // workers and the HTTP threads inherit the mask, so none of them takes the signal's default action).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Session session(o.model, params, weights_seed);
  session.tokenizer();
  session.start(/*sampling_may_change=*/true);

  server::Server srv(session, o.server);
  const int port = srv.bind();
  fmt::print(stderr, "{}: {} experts, backend {}, context {}, default {}\n", session.label(),
             o.model.experts, session.backend_label(), session.max_context(),
             sampling::describe(params));
  fmt::print(stderr, "listening on http://{}:{} (model name {}{}); Ctrl-C stops\n", o.server.host,
             port, o.server.model_name, o.server.api_key.empty() ? "" : ", API key required");
  std::thread signals([&srv, set] {
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
      fmt::print(stderr, "{}: finishing the running request, then exiting\n", signal_name(sig));
      srv.stop();
    }
  });
  signals.detach();
  srv.run();
  fmt::print(stderr, "server stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "an OpenAI-compatible HTTP server (chat, completions, responses)");
  add_model_options(cmd, opts->model);
  add_sampling_options(cmd, opts->sampling, /*default_temp=*/1.0f);
  cmd->add_option("--host", opts->server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", opts->server.port, "port (0: any free one, printed)")->capture_default_str();
  cmd->add_option("--api-key", opts->server.api_key,
                  "require Authorization: Bearer KEY on every route but /health");
  cmd->add_option("--max-queue", opts->server.max_queue,
                  "requests that may wait for the engine; more get 429")
      ->capture_default_str();
  cmd->add_option("--max-tokens", opts->max_tokens, "tokens per reply when a request sets none")
      ->capture_default_str();
  cmd->add_option("--max-body", opts->max_body_kib, "largest request body in KiB (larger: 413)")
      ->capture_default_str();
  cmd->add_option("--reasoning", opts->reasoning, "default harmony reasoning effort: low|medium|high")
      ->capture_default_str();
  cmd->add_option("--model-name", opts->server.model_name, "the model id /v1/models lists")
      ->capture_default_str();
  cmd->add_flag("--quiet", opts->quiet, "no line per request on stderr");
  cmd->callback([opts] { run_serve(*opts); });
}

}  // namespace gptoss::cli
