#include "host/server/metrics.h"

#include <fmt/format.h>

namespace gptoss::server {

void Metrics::Histogram::add(double v) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (v <= kBounds[i]) ++counts[i];
  }
  ++count;
  sum += v;
}

void Metrics::Histogram::write(std::string& out, const char* name, const char* help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  for (size_t i = 0; i < kBounds.size(); ++i) {
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], counts[i]);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count, name, sum,
                     name, count);
}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::generation(int prompt, int completion, int prefill_run, int reused) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
  prefill_ += prefill_run;
  reused_ += reused;
}

void Metrics::ttft(double s) {
  std::lock_guard lock(mu_);
  ttft_.add(s);
}

void Metrics::tpot(double s) {
  std::lock_guard lock(mu_);
  tpot_.add(s);
}

void Metrics::queue(int waiting, bool busy) {
  std::lock_guard lock(mu_);
  waiting_ = waiting;
  busy_ = busy;
}

void Metrics::disconnect() {
  std::lock_guard lock(mu_);
  ++disconnects_;
}

int64_t Metrics::prefill_positions() const {
  std::lock_guard lock(mu_);
  return prefill_;
}

int64_t Metrics::reused_positions() const {
  std::lock_guard lock(mu_);
  return reused_;
}

std::string Metrics::prometheus() const {
  std::lock_guard lock(mu_);
  std::string out =
      "# HELP gptoss_requests_total HTTP requests answered, by endpoint and status.\n"
      "# TYPE gptoss_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("gptoss_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  }
  auto counter = [&](const char* name, const char* help, int64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  counter("gptoss_prompt_tokens_total", "Prompt tokens of finished generations.", prompt_tokens_);
  counter("gptoss_completion_tokens_total", "Tokens generated.", completion_tokens_);
  counter("gptoss_prefill_positions_total", "Prompt positions run through the model.", prefill_);
  counter("gptoss_prefix_reused_positions_total",
          "Prompt positions reused from the KV cache (the previous request's prefix).", reused_);
  counter("gptoss_client_disconnects_total", "Streams whose client went away mid-generation.",
          disconnects_);
  gauge("gptoss_queue_depth", "Requests waiting for the engine.", waiting_);
  gauge("gptoss_engine_busy", "1 while a request runs on the engine.", busy_ ? 1 : 0);
  ttft_.write(out, "gptoss_ttft_seconds", "Time from the start of a request on the engine to its first token.");
  tpot_.write(out, "gptoss_tpot_seconds", "Time per output token after the first.");
  return out;
}

}  // namespace gptoss::server
