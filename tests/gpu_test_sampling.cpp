// gpu_test_sampling.cpp — the device sampler (host/runtime/sample_gpu.h, tag [sampling]) against
// the CPU sampler (host/sampling/sampler.h): the same token for the same logits, parameters and
// draw (the kept set and the Gumbel noise are defined identically; distinct random logits keep
// every filter boundary far from a tie), its draws follow the filtered softmax (chi-square), ties
// resolve inside the CPU's kept set, NaN logits are refused, and `generate --backend cuda --temp`
// repeats itself per seed.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "host/error.h"
#include "host/gpu.h"
#include "host/runtime/sample_gpu.h"
#include "host/sampling/sampler.h"

using namespace gptoss;
using sampling::SamplingParams;

namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 g{std::random_device{}()};
  return g;
}

std::vector<float> random_logits(int n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng());
  return v;
}

struct DeviceLogits {
  float* p = nullptr;
  explicit DeviceLogits(const std::vector<float>& host) {
    p = static_cast<float*>(gpu::device_alloc(host.size() * sizeof(float), "test logits"));
    gpu::copy_to_device(p, host.data(), host.size() * sizeof(float));
  }
  ~DeviceLogits() { gpu::device_free(p); }
};

std::vector<SamplingParams> parameter_sets() {
  return {{1.0f, 0, 1.0f, 0.0f, 0},  {0.6f, 0, 1.0f, 0.0f, 0},  {1.0f, 5, 1.0f, 0.0f, 0},
          {0.9f, 0, 0.8f, 0.0f, 0},  {1.3f, 0, 1.0f, 0.1f, 0},  {1.0f, 40, 0.95f, 0.02f, 0},
          {2.0f, 1, 1.0f, 0.0f, 0},  {0.0f, 3, 0.5f, 0.0f, 0}};
}

}  // namespace

TEST_CASE("GPU sampler picks the CPU sampler's token", "[sampling]") {
  for (int vocab : {7, 1000, 201088}) {
    const std::vector<float> logits = random_logits(vocab, 2.0f);
    const DeviceLogits d(logits);
    GpuSampler sampler(vocab);
    for (SamplingParams p : parameter_sets()) {
      p.seed = rng()();
      const int draws = vocab > 10000 ? 20 : 300;
      int same = 0;
      for (int k = 0; k < draws; ++k) {
        same += sampler.sample(d.p, p, uint64_t(k)) == sampling::sample(logits, p, uint64_t(k));
      }
      INFO(sampling::describe(p) << ", vocabulary " << vocab);
      CHECK(same == draws);
    }
  }
}

TEST_CASE("GPU sampler draws follow the filtered softmax (chi-square)", "[sampling]") {
  const int vocab = 12, draws = 20000;
  for (SamplingParams p : parameter_sets()) {
    if (p.greedy()) continue;
    p.seed = rng()();
    const std::vector<float> logits = random_logits(vocab, 1.5f);
    const DeviceLogits d(logits);
    GpuSampler sampler(vocab);
    const std::vector<double> probs = sampling::sampling_distribution(logits, p);
    std::vector<int> counts(vocab, 0);
    for (int k = 0; k < draws; ++k) ++counts[size_t(sampler.sample(d.p, p, uint64_t(k)))];
    double chi = 0;
    int df = -1;
    bool outside = false;
    for (int i = 0; i < vocab; ++i) {
      if (probs[size_t(i)] == 0) {
        outside |= counts[size_t(i)] > 0;
        continue;
      }
      const double e = probs[size_t(i)] * draws;
      chi += (counts[size_t(i)] - e) * (counts[size_t(i)] - e) / e;
      ++df;
    }
    // The chi-square quantile at 1 - 1e-5 (Wilson-Hilferty, z = 4.265).
    const double a = 2.0 / (9.0 * std::max(df, 1));
    const double critical = df <= 0 ? 0 : df * std::pow(1 - a + 4.265 * std::sqrt(a), 3);
    INFO(sampling::describe(p) << ": chi-square " << chi << ", " << df << " degrees of freedom");
    CHECK_FALSE(outside);
    CHECK(chi <= critical);
  }
}

TEST_CASE("GPU sampler: ties stay in the CPU's kept set, NaN is refused", "[sampling]") {
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> logits = random_logits(300, 2.0f);
    for (float& x : logits) x = std::round(x);  // many ties at every boundary
    const DeviceLogits d(logits);
    GpuSampler sampler(300);
    SamplingParams p{1.0f, 1 + int(rng()() % 30), trial % 2 ? 1.0f : 0.7f, 0.0f, rng()()};
    const std::vector<int> kept = sampling::kept_tokens(logits, p);
    for (int k = 0; k < 50; ++k) {
      const int t = sampler.sample(d.p, p, uint64_t(k));
      INFO(sampling::describe(p) << ": token " << t);
      CHECK(std::find(kept.begin(), kept.end(), t) != kept.end());
    }
  }
  std::vector<float> logits = random_logits(100, 1.0f);
  logits[17] = std::numeric_limits<float>::quiet_NaN();
  const DeviceLogits d(logits);
  GpuSampler sampler(100);
  CHECK_THROWS_AS(sampler.sample(d.p, {1.0f, 0, 1.0f, 0.0f, 1}, 0), Error);
  CHECK_THROWS_AS(sampler.sample(d.p, {1.0f, 10, 0.9f, 0.0f, 1}, 0), Error);
}

TEST_CASE("generate --backend cuda --temp: the same seed gives the same tokens", "[sampling]") {
  const char* env = std::getenv("GPTOSS_BINARY");
  const std::string bin = env ? env : GPTOSS_BINARY;
  auto run = [&](const std::string& args) {
    const std::string cmd = bin + " generate --synthetic tiny --weights-seed 1 --backend cuda "
                                  "--tokens 1,2,3 -n 24 " + args + " 2>/dev/null";
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
    const int status = pclose(pipe);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return out;
  };
  const std::string a = run("--temp 1.5 --top-p 0.95 --seed 3");
  CHECK(a == run("--temp 1.5 --top-p 0.95 --seed 3"));
  CHECK(a != run("--temp 1.5 --top-p 0.95 --seed 4"));
  CHECK(run("--temp 0") == run(""));
  CHECK(run("--temp 2 --top-k 1 --seed 9") == run(""));
}
