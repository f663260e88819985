#include "host/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/core.h>

#include "host/error.h"
#include "host/sampling/rng.h"

namespace gptoss::sampling {
namespace {

void check_no_nan(std::span<const float> logits) {
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) {
      throw Error(fmt::format("the logits are NaN at token id {}: nothing to sample from", i),
                  "the weights may be corrupt: run `gptoss info --verify` on the archive");
    }
  }
  if (logits.empty()) throw Error("sampling from an empty vocabulary");
}

// Sampling order: larger logit first, lower id first among equal logits.
struct ByLogit {
  std::span<const float> logits;
  bool operator()(int a, int b) const {
    const float la = logits[size_t(a)], lb = logits[size_t(b)];
    return la > lb || (la == lb && a < b);
  }
};

}  // namespace

void validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    throw Error(fmt::format("--temp {}: the temperature must be a finite number >= 0", p.temperature),
                "0 is greedy decoding; gpt-oss's recommended temperature is 1.0");
  }
  if (p.top_k < 0) {
    throw Error(fmt::format("--top-k {}: must be >= 0", p.top_k), "0 turns top-k off");
  }
  if (std::isnan(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f) {
    throw Error(fmt::format("--top-p {}: must be in (0, 1]", p.top_p), "1 turns top-p off");
  }
  if (std::isnan(p.min_p) || p.min_p < 0.0f || p.min_p > 1.0f) {
    throw Error(fmt::format("--min-p {}: must be in [0, 1]", p.min_p), "0 turns min-p off");
  }
}

std::string describe(const SamplingParams& p) {
  if (p.greedy()) return "greedy";
  std::string s = fmt::format("temperature {:g}", p.temperature);
  if (p.top_k > 0) s += fmt::format(", top-k {}", p.top_k);
  if (p.top_p < 1.0f) s += fmt::format(", top-p {:g}", p.top_p);
  if (p.min_p > 0.0f) s += fmt::format(", min-p {:g}", p.min_p);
  return s + fmt::format(", seed {}", p.seed);
}

int argmax(std::span<const float> logits) {
  int best = -1;
  for (size_t v = 0; v < logits.size(); ++v) {
    if (std::isnan(logits[v])) continue;
    if (best < 0 || logits[v] > logits[size_t(best)]) best = int(v);
  }
  if (best < 0) throw Error("all logits are NaN: nothing to sample from");
  return best;
}

std::vector<int> kept_tokens(std::span<const float> logits, const SamplingParams& p) {
  check_no_nan(logits);
  const int n = int(logits.size());
  const double inv_t = p.temperature > 0.0f ? 1.0 / double(p.temperature) : 1.0;
  const double zmax = double(*std::max_element(logits.begin(), logits.end())) * inv_t;
  std::vector<int> kept(static_cast<size_t>(n));
  std::iota(kept.begin(), kept.end(), 0);
  if (p.needs_order()) {
    const ByLogit order{logits};
    if (p.top_k > 0 && p.top_k < n) {
      std::partial_sort(kept.begin(), kept.begin() + p.top_k, kept.end(), order);
      kept.resize(size_t(p.top_k));
    } else {
      std::sort(kept.begin(), kept.end(), order);
    }
    if (p.top_p < 1.0f) {
      double total = 0;
      for (int id : kept) total += std::exp(double(logits[size_t(id)]) * inv_t - zmax);
      double cum = 0;
      size_t m = 0;
      while (m < kept.size()) {
        cum += std::exp(double(logits[size_t(kept[m])]) * inv_t - zmax) / total;
        ++m;
        if (cum >= double(p.top_p)) break;
      }
      kept.resize(m);
    }
  }
  if (p.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  z_i - z_max >= log(min_p); the most likely token always stays.
    const double floor = std::log(double(p.min_p));
    std::erase_if(kept, [&](int id) { return double(logits[size_t(id)]) * inv_t - zmax < floor; });
  }
  return kept;
}

int sample(std::span<const float> logits, const SamplingParams& p, uint64_t draw) {
  if (p.greedy()) return argmax(logits);
  const double inv_t = 1.0 / double(p.temperature);
  int best = -1;
  double best_score = 0;
  auto consider = [&](int id) {
    const double score = double(logits[size_t(id)]) * inv_t + gumbel_noise(p.seed, draw, uint64_t(id));
    if (best < 0 || score > best_score || (score == best_score && id < best)) {
      best = id;
      best_score = score;
    }
  };
  if (!p.needs_order() && p.min_p == 0.0f) {
    check_no_nan(logits);
    for (int id = 0; id < int(logits.size()); ++id) consider(id);
  } else {
    for (int id : kept_tokens(logits, p)) consider(id);
  }
  return best;
}

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p) {
  std::vector<double> probs(logits.size(), 0.0);
  if (p.greedy()) {
    probs[size_t(argmax(logits))] = 1.0;
    return probs;
  }
  const double inv_t = 1.0 / double(p.temperature);
  const double zmax = double(*std::max_element(logits.begin(), logits.end())) * inv_t;
  double total = 0;
  for (int id : kept_tokens(logits, p)) {
    probs[size_t(id)] = std::exp(double(logits[size_t(id)]) * inv_t - zmax);
    total += probs[size_t(id)];
  }
  for (double& q : probs) q /= total;
  return probs;
}

}  // namespace gptoss::sampling
