// phase_out_proj.cuh — phase kOutProj: x = x_in + W_o attn + b_o (the FP32 residual; x_in is the
// embedding row at layer 0). Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Phase kOutProj: x = x_in + W_o attn + b_o; CTA b owns a contiguous range of rows
// (cta_gemv_bf16).
__device__ void phase_out_proj(const MegakernelArgs& a, const LayerArgs& L, bool from_embed,
                               int token, const Smem& s) {
  const int q_dim = a.num_heads * kHeadDim;
  bf16_act_to_smem(s.act, a.attn_out, q_dim);
  __syncthreads();
  const int r_begin = int(int64_t(a.hidden) * blockIdx.x / gridDim.x);
  const int r_end = int(int64_t(a.hidden) * (blockIdx.x + 1) / gridDim.x);
  float* red = s.act + align16(q_dim * int(sizeof(float))) / int(sizeof(float));
  cta_gemv_bf16([&](int i) { return L.out_weight + size_t(r_begin + i) * q_dim; }, r_end - r_begin,
                s.act, q_dim, red);
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  for (int i = threadIdx.x; i < r_end - r_begin; i += kThreads) {
    const int row = r_begin + i;
    const float o = sum_splits(red, i);
    const float x_in = from_embed ? bf16_bits_to_float(emb[row]) : ld_act(a.x + row);
    a.x[row] = x_in + (o + bf16_bits_to_float(L.out_bias[row]));
  }
}

}  // namespace gptoss::mk::kernel
