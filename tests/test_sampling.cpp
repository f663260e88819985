// test_sampling.cpp — the CPU sampler (host/sampling/, tag [sampling]): its draws follow the
// softmax of the filtered logits (chi-square over many draws on a small vocabulary, every filter),
// the kept set matches a brute-force reading of each filter's definition, the same seed gives the
// same tokens, temperature 0 is the greedy argmax, and bad values are refused by name.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "host/error.h"
#include "host/sampling/sampler.h"

using namespace gptoss;
using namespace gptoss::sampling;

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

// The chi-square statistic of `counts` against `probs` over the cells with probability > 0;
// counts in a zero-probability cell make it infinite.
double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int n, int* df) {
  double chi = 0;
  *df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      if (counts[i] > 0) return std::numeric_limits<double>::infinity();
      continue;
    }
    const double e = probs[i] * n;
    chi += (counts[i] - e) * (counts[i] - e) / e;
    ++*df;
  }
  return chi;
}

// The chi-square quantile at 1 - 1e-5 (Wilson-Hilferty; z = 4.265): a correct sampler fails a
// case with probability 1e-5.
double chi_critical(int df) {
  if (df <= 0) return 0;
  const double z = 4.265, a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

}  // namespace

TEST_CASE("sampler draws follow the filtered softmax (chi-square)", "[sampling]") {
  const int vocab = 12, draws = 30000;
  std::vector<SamplingParams> cases;
  for (float t : {0.5f, 1.0f, 1.7f}) cases.push_back({t, 0, 1.0f, 0.0f, 0});
  cases.push_back({1.0f, 4, 1.0f, 0.0f, 0});
  cases.push_back({0.8f, 0, 0.7f, 0.0f, 0});
  cases.push_back({1.2f, 0, 1.0f, 0.15f, 0});
  cases.push_back({1.0f, 6, 0.9f, 0.05f, 0});
  for (SamplingParams p : cases) {
    p.seed = rng()();
    const std::vector<float> logits = random_logits(vocab, 1.5f);
    const std::vector<double> probs = sampling_distribution(logits, p);
    std::vector<int> counts(size_t(vocab), 0);
    for (int d = 0; d < draws; ++d) ++counts[size_t(sample(logits, p, uint64_t(d)))];
    int df = 0;
    const double chi = chi_square(counts, probs, draws, &df);
    INFO(describe(p) << ", chi-square " << chi << " with " << df << " degrees of freedom");
    CHECK(chi <= chi_critical(df));
    // The test can fail: the same counts against the softmax at another temperature, where that
    // distribution differs (a filter that keeps one token gives the same one at any temperature:
    // random logits do that to top-p now and then, and the comparison then proves nothing).
    SamplingParams other = p;
    other.temperature = p.temperature * 1.5f;
    const std::vector<double> other_probs = sampling_distribution(logits, other);
    double largest_change = 0;
    for (int i = 0; i < vocab; ++i) {
      largest_change = std::max(largest_change, std::abs(other_probs[size_t(i)] - probs[size_t(i)]));
    }
    if (largest_change > 0.02) {  // at 30,000 draws: a chi-square far beyond the critical value
      int df2 = 0;
      CHECK(chi_square(counts, other_probs, draws, &df2) > chi_critical(df2));
    }
  }
}

TEST_CASE("sampler filters keep what their definitions say", "[sampling]") {
  for (int trial = 0; trial < 200; ++trial) {
    const int vocab = 1 + int(rng()() % 40);
    std::vector<float> logits = random_logits(vocab, 2.0f);
    if (trial % 3 == 0) {  // ties: logits from a few values
      for (float& x : logits) x = std::round(x);
    }
    SamplingParams p;
    p.temperature = 0.3f + float(rng()() % 100) / 50.0f;
    p.top_k = int(rng()() % 8);
    p.top_p = trial % 2 ? 1.0f : 0.1f + float(rng()() % 90) / 100.0f;
    p.min_p = trial % 4 == 1 ? float(rng()() % 50) / 100.0f : 0.0f;
    // Brute force: the order, then each filter by its definition.
    std::vector<int> order(static_cast<size_t>(vocab));
    for (int i = 0; i < vocab; ++i) order[size_t(i)] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return logits[size_t(a)] > logits[size_t(b)]; });
    if (p.top_k > 0 && p.top_k < vocab) order.resize(size_t(p.top_k));
    std::vector<double> z;
    for (int id : order) z.push_back(double(logits[size_t(id)]) / p.temperature);
    const double zmax = z[0];
    double total = 0;
    for (double v : z) total += std::exp(v - zmax);
    std::vector<int> want;
    double cum = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      if (p.top_p < 1.0f && j > 0 && cum >= p.top_p) break;
      cum += std::exp(z[j] - zmax) / total;
      if (p.min_p > 0 && std::exp(z[j] - zmax) < p.min_p * (1 - 1e-12)) continue;
      want.push_back(order[j]);
    }
    std::vector<int> got = kept_tokens(logits, p);
    if (!p.needs_order()) std::sort(want.begin(), want.end());
    INFO(describe(p) << ", vocabulary " << vocab);
    REQUIRE(got == want);
    REQUIRE(!got.empty());
    // Every draw is a kept token.
    for (int d = 0; d < 20; ++d) {
      CHECK(std::find(got.begin(), got.end(), sample(logits, p, uint64_t(d))) != got.end());
    }
  }
}

TEST_CASE("sampler: the same seed gives the same tokens, another seed others", "[sampling]") {
  const std::vector<float> logits = random_logits(1000, 1.0f);
  SamplingParams p{1.0f, 0, 0.95f, 0.0f, rng()()};
  Sampler a(p), b(p);
  std::vector<int> ta, tb;
  for (int i = 0; i < 64; ++i) {
    ta.push_back(a.next(logits));
    tb.push_back(b.next(logits));
  }
  CHECK(ta == tb);
  p.seed ^= 1;
  Sampler c(p);
  std::vector<int> tc;
  for (int i = 0; i < 64; ++i) tc.push_back(c.next(logits));
  CHECK(tc != ta);  // 64 draws over a flat-ish distribution of 1000 tokens: equal by chance ~never
}

TEST_CASE("sampler: temperature 0 is the greedy argmax whatever the other options", "[sampling]") {
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> logits = random_logits(300, 3.0f);
    logits[size_t(rng()() % 300)] = 50.0f;  // a tie at the top half the time
    if (trial % 2) logits[size_t(rng()() % 300)] = 50.0f;
    const int want = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    SamplingParams p{0.0f, int(rng()() % 5), 0.5f, 0.2f, rng()()};
    CHECK(sample(logits, p, uint64_t(trial)) == want);
    CHECK(argmax(logits) == want);
  }
  // A very low temperature converges on the argmax too.
  const std::vector<float> logits = random_logits(300, 3.0f);
  const int want = argmax(logits);
  for (int d = 0; d < 20; ++d) CHECK(sample(logits, {1e-4f, 0, 1.0f, 0.0f, 5}, uint64_t(d)) == want);
}

TEST_CASE("sampler refuses bad values by name", "[sampling]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto refused = [](SamplingParams p, const char* what) {
    try {
      validate(p);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(what));
      return true;
    }
    return false;
  };
  CHECK(refused({-0.5f, 0, 1.0f, 0.0f, 0}, "--temp -0.5"));
  CHECK(refused({nan, 0, 1.0f, 0.0f, 0}, "--temp nan"));
  CHECK(refused({inf, 0, 1.0f, 0.0f, 0}, "--temp inf"));
  CHECK(refused({1.0f, -1, 1.0f, 0.0f, 0}, "--top-k -1"));
  CHECK(refused({1.0f, 0, 1.5f, 0.0f, 0}, "--top-p 1.5: must be in (0, 1]"));
  CHECK(refused({1.0f, 0, 0.0f, 0.0f, 0}, "--top-p 0"));
  CHECK(refused({1.0f, 0, nan, 0.0f, 0}, "--top-p nan"));
  CHECK(refused({1.0f, 0, 1.0f, -0.1f, 0}, "--min-p -0.1"));
  CHECK(refused({1.0f, 0, 1.0f, 1.5f, 0}, "--min-p 1.5"));
  CHECK(refused({1.0f, 0, 1.0f, nan, 0}, "--min-p nan"));
  CHECK_FALSE(refused({0.0f, 0, 1.0f, 0.0f, 0}, ""));
  CHECK_FALSE(refused({2.0f, 100000, 1.0f, 1.0f, 0}, ""));
  CHECK_THROWS_AS(Sampler({-1.0f, 0, 1.0f, 0.0f, 0}), Error);
  // NaN logits are an error, not a token.
  std::vector<float> logits = random_logits(10, 1.0f);
  logits[3] = nan;
  CHECK_THROWS_WITH(sample(logits, {1.0f, 0, 1.0f, 0.0f, 0}, 0), Catch::Contains("NaN at token id 3"));
  CHECK_THROWS_WITH(sample(logits, {1.0f, 2, 1.0f, 0.0f, 0}, 0), Catch::Contains("NaN at token id 3"));
}
