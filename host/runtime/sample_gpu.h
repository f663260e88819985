// sample_gpu.h — the token sampler on the device, over the FP32 logits the engine writes
// (GpuEngine::device_logits(), DecodeOptions::keep_logits): the same definition as the CPU
// sampler (host/sampling/sampler.h: temperature, then top-k, top-p, min-p, Gumbel-max with the
// counter-based noise of host/sampling/rng.h), so a seed picks the same token on both backends
// whenever the logits are equal and no filter boundary sits within rounding of a tie. Only the
// chosen id (4 bytes) comes back to the host, never the 0.8 MB of logits.
#pragma once

#include <cstdint>

#include "host/sampling/sampler.h"

namespace gptoss {

class GpuSampler {
 public:
  explicit GpuSampler(int vocab_size);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  // The token of draw `draw` from `device_logits` [vocab_size] (device memory). Greedy params
  // return the argmax. Throws gptoss::Error on a NaN logit (like the CPU sampler).
  int sample(const float* device_logits, const sampling::SamplingParams& params, uint64_t draw);

 private:
  int vocab_;
  void* state_ = nullptr;  // device: the result and the NaN flag
};

}  // namespace gptoss
