// swiglu.cuh — the clamped SwiGLU of gpt-oss (FACTS.md 3, step 2.8) on mlp1's interleaved output
// h (h[2m] = gate, h[2m+1] = up of channel m): g = min(g, limit), u = clamp(u, -limit, limit),
// out = g * sigmoid(1.702 g) * (u + 1), in FP32 (expf, <= 2 ulp). The clamps are comparisons, so a
// NaN input stays NaN (fminf would drop it). swiglu: thread scope; block_swiglu: block scope over
// channels with a store functor, no __syncthreads().
#pragma once

#include "device_ops/platform.cuh"

namespace gptoss::dev {

inline constexpr float kSwigluAlpha = 1.702f;

__device__ __forceinline__ float swiglu(float g, float u, float limit) {
  g = g > limit ? limit : g;
  u = u > limit ? limit : (u < -limit ? -limit : u);
  return g / (1.0f + expf(-kSwigluAlpha * g)) * (u + 1.0f);
}

// store(m, swiglu(h[2m], h[2m+1])) for m in [0, num_channels).
template <class Store>
__device__ void block_swiglu(const float* h, int num_channels, float limit, Store&& store) {
  for (int m = int(threadIdx.x); m < num_channels; m += int(blockDim.x)) {
    const float2 gu = *reinterpret_cast<const float2*>(h + 2 * m);
    store(m, swiglu(gu.x, gu.y, limit));
  }
}

}  // namespace gptoss::dev
