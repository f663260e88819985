#include "host/runtime/sample_gpu.h"

#include <fmt/core.h>

#include "host/error.h"
#include "host/gpu.h"
#include "host/runtime/sample_gpu_launch.h"

namespace gptoss {

#ifndef GPTOSS_GPU_OFF

GpuSampler::GpuSampler(int vocab_size) : vocab_(vocab_size) {
  GPTOSS_CHECK(vocab_size > 0, "GpuSampler: vocabulary of {}", vocab_size);
  // [vocab] doubles of scratch (the tokens' exp(z - zmax)), then the result.
  state_ = gpu::device_alloc(sizeof(double) * size_t(vocab_size) + 256, "sampler scratch");
}

GpuSampler::~GpuSampler() { gpu::device_free(state_); }

int GpuSampler::sample(const float* device_logits, const sampling::SamplingParams& p,
                       uint64_t draw) {
  GPTOSS_CHECK(device_logits, "GpuSampler: no device logits (the engine needs keep_logits)");
  auto* scratch = static_cast<double*>(state_);
  auto* result = reinterpret_cast<int32_t*>(scratch + vocab_);
  const GpuSampleArgs args{p.temperature, p.top_k, p.top_p, p.min_p, p.seed, draw};
  sample_launch_device(device_logits, vocab_, args, scratch, result);
  int32_t token = -1;
  gpu::copy_to_host(&token, result, sizeof(token));
  if (token < 0 || token >= vocab_) {
    throw Error("the logits are NaN: nothing to sample from",
                "the weights may be corrupt: run `gptoss info --verify` on the archive");
  }
  return token;
}

#else  // GPTOSS_GPU_OFF

GpuSampler::GpuSampler(int vocab_size) : vocab_(vocab_size) {
  throw gpu::GpuError("this gptoss was built without GPU support (-DGPTOSS_GPU=OFF)",
                      "rebuild with -DGPTOSS_GPU=CUDA, or use the CPU backend", Remedy::kCpuBackend);
}
GpuSampler::~GpuSampler() = default;
int GpuSampler::sample(const float*, const sampling::SamplingParams&, uint64_t) { return -1; }

#endif  // GPTOSS_GPU_OFF

}  // namespace gptoss
