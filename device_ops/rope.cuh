// rope.cuh — YaRN rotary embedding on q and k heads (FACTS.md 3, step 2.3): half-split pairs
// (i, i + head_dim/2) rotated by the angle pos * omega_i, with the concentration C multiplied into
// both cos and sin. Block scope, in place on FP32 values (the caller rounds to bf16 afterwards).
// Precision: table mode reads (C cos, C sin) from rope_yarn.h's FP64-built table; computed mode
// forms the angle as FP32 float(pos) * omega_i as the HF/OpenAI references do (<= 0.5 ulp of the
// angle), then sincosf (<= 2 ulp) and one FP32 multiply by C. No __syncthreads() on entry or exit.
#pragma once

#include "device_ops/platform.cuh"

namespace gptoss::dev {

struct RopeTable {
  const float* inv_freq;  // [head_dim/2] FP32 omega_i (yarn_inv_freq_f32)
  float concentration;    // C
  const float* cos_sin;   // nullptr: computed mode; else [positions][head_dim/2][2] (C cos, C sin)
};

// (C cos, C sin) of pair i at position pos; half = head_dim / 2.
__device__ __forceinline__ float2 rope_cos_sin(const RopeTable& t, int pos, int i, int half) {
  if (t.cos_sin != nullptr) {
    return *reinterpret_cast<const float2*>(t.cos_sin + (int64_t(pos) * half + i) * 2);
  }
  const float angle = float(pos) * t.inv_freq[i];
  float s, c;
  sincosf(angle, &s, &c);
  return make_float2(c * t.concentration, s * t.concentration);
}

// Rotates num_heads heads of kHeadDim floats at x (head h at x + h * kHeadDim) in place.
// Threads take (head, pair) items; shared or global memory.
template <int kHeadDim>
__device__ void block_rope_inplace(float* x, int num_heads, int pos, const RopeTable& t) {
  static_assert(kHeadDim % 2 == 0, "pairs (i, i + head_dim/2)");
  constexpr int kHalf = kHeadDim / 2;
  for (int item = int(threadIdx.x); item < num_heads * kHalf; item += int(blockDim.x)) {
    const int h = item / kHalf, i = item % kHalf;
    const float2 cs = rope_cos_sin(t, pos, i, kHalf);
    float* head = x + h * kHeadDim;
    const float a = head[i], b = head[i + kHalf];
    head[i] = a * cs.x - b * cs.y;
    head[i + kHalf] = b * cs.x + a * cs.y;
  }
}

}  // namespace gptoss::dev
