// router_topk.cuh — expert selection (FACTS.md 3, step 2.7): the top-k router logits (k = 4), the
// lowest index winning ties, then a softmax over the chosen k only, in FP32. Also ArgMax, the
// (value, index) state of the LM head's greedy pick, with a deterministic merge (largest value,
// then lowest index; NaN never wins), so any split over threads, warps and CTAs picks the same.
// warp_* : warp scope, all lanes get the result; block_argmax: block scope.
#pragma once

#include <climits>

#include "device_ops/platform.cuh"

namespace gptoss::dev {

struct ArgMax {
  float value;
  int index;
};

__device__ __forceinline__ ArgMax argmax_identity() { return {-INFINITY, INT_MAX}; }

__device__ __forceinline__ ArgMax argmax_merge(const ArgMax& a, const ArgMax& b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ __forceinline__ ArgMax warp_argmax(ArgMax v) {
#pragma unroll
  for (int m = kWarpSize / 2; m > 0; m >>= 1) {
    const ArgMax o{shfl_xor(v.value, m), shfl_xor(v.index, m)};
    v = argmax_merge(v, o);
  }
  return v;
}

// All threads call; scratch = kMaxWarpsPerBlock ArgMax in shared memory; two __syncthreads().
__device__ inline ArgMax block_argmax(ArgMax v, ArgMax* scratch) {
  v = warp_argmax(v);
  if (lane_id() == 0) scratch[warp_id()] = v;
  __syncthreads();
  ArgMax r = argmax_identity();
  for (int w = 0; w < num_warps(); ++w) r = argmax_merge(r, scratch[w]);
  __syncthreads();
  return r;
}

template <int kK>
struct TopK {
  int index[kK];     // descending logit order (ties: lower index first)
  float weight[kK];  // softmax over the kK chosen logits
};

// Warp scope: logits[num_experts] (global or shared memory), kK <= num_experts <=
// kWarpSize * kMaxPerLane. Every lane returns the same result.
template <int kK, int kMaxPerLane>
__device__ TopK<kK> warp_router_topk(const float* logits, int num_experts) {
  const int lane = lane_id();
  float v[kMaxPerLane];
  bool live[kMaxPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int e = lane + i * kWarpSize;
    live[i] = e < num_experts;
    v[i] = live[i] ? logits[e] : -INFINITY;
  }
  TopK<kK> r;
  float chosen[kK];
#pragma unroll
  for (int k = 0; k < kK; ++k) {
    ArgMax best = argmax_identity();
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (live[i]) best = argmax_merge(best, ArgMax{v[i], lane + i * kWarpSize});
    }
    best = warp_argmax(best);
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      if (best.index == lane + i * kWarpSize) live[i] = false;
    }
    r.index[k] = best.index;
    chosen[k] = best.value;
  }
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kK; ++k) {
    r.weight[k] = expf(chosen[k] - chosen[0]);
    sum += r.weight[k];
  }
#pragma unroll
  for (int k = 0; k < kK; ++k) r.weight[k] /= sum;
  return r;
}

}  // namespace gptoss::dev
