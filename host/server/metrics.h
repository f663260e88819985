// metrics.h — what `gptoss serve` counts, written in the Prometheus text format at /metrics:
// requests by endpoint and status, prompt / completion tokens, the prompt positions run and those
// reused from the KV cache (prefix reuse), TTFT and TPOT histograms, queue depth, engine busy.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace gptoss::server {

class Metrics {
 public:
  void request(const std::string& endpoint, int status);
  // One finished generation: prompt tokens, completion tokens, prompt positions run (prefill) and
  // reused from the cache.
  void generation(int prompt, int completion, int prefill_run, int reused);
  void ttft(double seconds);
  void tpot(double seconds);
  void queue(int waiting, bool busy);
  void disconnect();
  std::string prometheus() const;

  int64_t prefill_positions() const;
  int64_t reused_positions() const;

 private:
  // Cumulative buckets (le) in seconds.
  struct Histogram {
    static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,    1,     2.5,  5,     10,  30};
    std::array<int64_t, kBounds.size()> counts{};
    int64_t count = 0;
    double sum = 0;
    void add(double v);
    void write(std::string& out, const char* name, const char* help) const;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, prefill_ = 0, reused_ = 0, disconnects_ = 0;
  int waiting_ = 0;
  bool busy_ = false;
  Histogram ttft_, tpot_;
};

}  // namespace gptoss::server
