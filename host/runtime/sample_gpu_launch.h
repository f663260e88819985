// sample_gpu_launch.h — the device launch behind GpuSampler (host/runtime/sample_gpu.h), in plain
// C++17 so sample_gpu.cu (compiled by nvcc or hipcc as C++17) shares it with the C++20 host code.
#pragma once

#include <cstdint>

namespace gptoss {

struct GpuSampleArgs {
  float temperature;  // > 0 (greedy is an argmax: temperature 0 here means that)
  int top_k;          // 0: off
  float top_p;        // 1: off
  float min_p;        // 0: off
  uint64_t seed;
  uint64_t draw;
};

// Samples from `logits` [vocab] (device) into result[0] (device; -1 when a logit is NaN), using
// `scratch` [vocab] doubles of device memory. Synchronous launch check (gpu::check_launch).
void sample_launch_device(const float* logits, int vocab, const GpuSampleArgs& args,
                          double* scratch, int32_t* result);

}  // namespace gptoss
