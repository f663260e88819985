// rmsnorm.cuh — block-scope RMSNorm with FP32 statistics (FACTS.md 3, step 2.1):
// t_i = bf16((x_i * r) * g_i), r = 1 / sqrt(mean(x^2) + eps), in FP32 with the gain applied after the
// normalization and one rounding to bf16 at the end (the references' order and rounding point).
// Contract: all threads of the block call; blockDim.x % kWarpSize == 0; scratch = kMaxWarpsPerBlock
// floats of shared memory; x is float (the FP32 residual) or bf16, any alignment; two
// __syncthreads() inside block_rms_inv (none on exit of block_rmsnorm: callers sync before reading
// what the store functor wrote).
#pragma once

#include "device_ops/numeric.cuh"
#include "device_ops/reduce.cuh"

namespace gptoss::dev {

template <class T>
__device__ __forceinline__ float load_as_float(const T* p, int i) {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16_to_float(p[i]);
  } else {
    return float(p[i]);
  }
}

// 1 / sqrt(mean(x^2) + eps) in FP32 (sqrt and division correctly rounded); all threads get it.
template <class T>
__device__ float block_rms_inv(const T* x, int n, float eps, float* scratch) {
  float ss = 0.0f;
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) {
    const float v = load_as_float(x, i);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, scratch);
  return 1.0f / sqrtf(ss / float(n) + eps);
}

// Calls store(i, t_i) for i in [0, n), t_i already rounded to bf16 (as a float).
template <class T, class Store>
__device__ void block_rmsnorm(const T* x, const bf16* gain, int n, float eps, float* scratch,
                              Store&& store) {
  const float r = block_rms_inv(x, n, eps, scratch);
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) {
    store(i, round_to_bf16((load_as_float(x, i) * r) * bf16_to_float(gain[i])));
  }
}

}  // namespace gptoss::dev
