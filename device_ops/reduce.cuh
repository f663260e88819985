// reduce.cuh — warp- and block-scope reductions written against kWarpSize.
// warp_*: all lanes of the warp call, all get the result. block_*: all threads of the block call
// (blockDim.x a multiple of kWarpSize, at most kMaxBlockThreads); `scratch` is kMaxWarpsPerBlock
// floats of shared memory; one __syncthreads() before reading scratch and one after, so the same
// scratch may be reused by the next call.
#pragma once

#include "device_ops/platform.cuh"

namespace gptoss::dev {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int m = kWarpSize / 2; m > 0; m >>= 1) v += shfl_xor(v, m);
  return v;
}

// NaN-propagating max (fmaxf would drop a NaN).
__device__ __forceinline__ float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int m = kWarpSize / 2; m > 0; m >>= 1) v = max_nan(v, shfl_xor(v, m));
  return v;
}

namespace detail {
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane_id() == 0) scratch[warp_id()] = v;
  __syncthreads();
  const int nw = num_warps();
  float r = kMax ? scratch[0] : 0.0f;
  // Every thread folds the per-warp values in the same order: identical results in all threads.
  for (int w = kMax ? 1 : 0; w < nw; ++w) r = kMax ? max_nan(r, scratch[w]) : r + scratch[w];
  __syncthreads();
  return r;
}
}  // namespace detail

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  return detail::block_reduce<false>(v, scratch);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return detail::block_reduce<true>(v, scratch);
}

}  // namespace gptoss::dev
