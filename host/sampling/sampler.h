// sampler.h — choosing the next token from the logits (every front end, both backends): greedy at
// temperature 0, else an exact sample from softmax(logits / T) restricted by top-k, top-p and
// min-p, drawn by Gumbel-max with the counter-based noise of rng.h (the same seed and draw give
// the same token; the GPU sampler, host/runtime/sample_gpu.h, keeps the same set and the same
// noise). The order is the one of Hugging Face transformers and vLLM: temperature, then top-k,
// then top-p over what top-k kept, then min-p; ties in the ordering go to the lower token id.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gptoss::sampling {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy; gpt-oss's recommended setting is 1.0
  int top_k = 0;             // keep the k most likely tokens; 0: off
  float top_p = 1.0f;        // keep the smallest most-likely set of probability >= top_p; 1: off
  float min_p = 0.0f;        // keep tokens with probability >= min_p * the largest; 0: off
  uint64_t seed = 0;

  bool greedy() const { return temperature == 0.0f; }
  // Filters that need the logits ordered (top-k / top-p); temperature and min-p alone do not.
  bool needs_order() const { return top_k > 0 || top_p < 1.0f; }
};

// Throws gptoss::Error naming the option (as the CLI spells it), the value and the valid range:
// temperature finite and >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1], none NaN.
void validate(const SamplingParams& params);

// A one-line description for logs: "greedy" or "temperature 0.8, top-p 0.95, seed 7".
std::string describe(const SamplingParams& params);

// The lowest-id maximum of the logits, NaN entries skipped; throws gptoss::Error when all are NaN.
int argmax(std::span<const float> logits);

// The token ids the filters keep, in the sampling order (logit descending, lower id first among
// equal logits) when params.needs_order(), else ascending ids. Always at least one id.
// Throws gptoss::Error on a NaN logit.
std::vector<int> kept_tokens(std::span<const float> logits, const SamplingParams& params);

// The token of draw number `draw` (0, 1, 2, ... for the tokens of a run): a pure function of the
// logits, the parameters and `draw`.
int sample(std::span<const float> logits, const SamplingParams& params, uint64_t draw);

// The probability of every token under `params` (0 for the filtered ones): what sample() draws
// from, for tests.
std::vector<double> sampling_distribution(std::span<const float> logits,
                                          const SamplingParams& params);

// A sampler that numbers its draws itself.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params) { validate(params_); }
  const SamplingParams& params() const { return params_; }
  int next(std::span<const float> logits) { return sample(logits, params_, draws_++); }
  // The number of the next draw, taken (samplers that draw elsewhere: the GPU's).
  uint64_t next_draw() { return draws_++; }
  uint64_t draws() const { return draws_; }

 private:
  SamplingParams params_;
  uint64_t draws_ = 0;
};

}  // namespace gptoss::sampling
