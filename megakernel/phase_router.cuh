// phase_router.cuh — phase kRouter: router logits of rmsnorm(x_attn), and the top-k selection
// every CTA computes for itself at the start of experts_up. Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Phase kRouter: t_mlp = rmsnorm(x_attn) in every CTA, left in s.act for experts_up (which runs
// after the next barrier and so needs no load of x of its own), and the router logits
// W_r t_mlp + b_r, CTA b owning a contiguous range of expert rows (cta_gemv_bf16).
__device__ void phase_router(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int e_begin = int(int64_t(a.num_experts) * blockIdx.x / gridDim.x);
  const int e_end = int(int64_t(a.num_experts) * (blockIdx.x + 1) / gridDim.x);
  rmsnorm_to_smem(s.act, a.x, nullptr, L.mlp_norm, a.hidden, a.rms_norm_eps, s);
  if (e_begin == e_end) return;
  float* red = s.act + align16(a.hidden * int(sizeof(float))) / int(sizeof(float));
  cta_gemv_bf16([&](int i) { return L.router_weight + size_t(e_begin + i) * a.hidden; },
                e_end - e_begin, s.act, a.hidden, red);
  for (int i = threadIdx.x; i < e_end - e_begin; i += kThreads) {
    a.router_logits[e_begin + i] = sum_splits(red, i) + bf16_bits_to_float(L.router_bias[e_begin + i]);
  }
}

// Top-k of the router logits (lowest index wins ties; a NaN logit ranks as -inf) and a softmax
// over the chosen k, computed by every CTA for itself (cheap, saves a barrier): warp 0 holds
// the logits in registers (expert e in lane e % 32) and runs k rounds of a warp argmax.
// Block scope, syncs on exit.
__device__ void select_experts(const MegakernelArgs& a, const Smem& s) {
  if (threadIdx.x < 32) {
    constexpr int kPerLane = kMaxExperts / 32;
    const int lane = threadIdx.x;
    float v[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      const float x = e < a.num_experts ? ld_act(a.router_logits + e) : -INFINITY;
      v[i] = x == x ? x : -INFINITY;
    }
    uint32_t taken = 0;  // bit i: expert lane + 32 i is chosen
    float* logits = s.scratch;  // [experts_per_token], lane 0's
    for (int r = 0; r < a.experts_per_token; ++r) {
      float bv = -INFINITY;
      int bi = INT_MAX;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int e = lane + 32 * i;
        if (e < a.num_experts && !((taken >> i) & 1u) && (v[i] > bv || bi == INT_MAX)) {
          bv = v[i];
          bi = e;
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = dev::shfl_xor(bv, o);
        const int oi = dev::shfl_xor(bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
          bv = ov;
          bi = oi;
        }
      }
      if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
      if (lane == 0) {
        s.sel[r] = bi;
        logits[r] = bv;
      }
    }
    if (lane == 0) {
      float sum = 0.0f;
      for (int r = 0; r < a.experts_per_token; ++r) {
        s.sel_w[r] = expf(logits[r] - logits[0]);
        sum += s.sel_w[r];
      }
      for (int r = 0; r < a.experts_per_token; ++r) s.sel_w[r] /= sum;
      if (blockIdx.x == 0) {
        for (int r = 0; r < a.experts_per_token; ++r) {
          a.expert_ids[r] = s.sel[r];
          a.expert_weights[r] = s.sel_w[r];
        }
      }
    }
  }
  __syncthreads();
}

}  // namespace gptoss::mk::kernel
