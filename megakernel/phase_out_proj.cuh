// phase_out_proj.cuh — phase kOutProj: x = x_in + W_o attn + b_o (W_o BF16 or E4M3 with per-row scales; the FP32 residual; x_in is the
// embedding row at layer 0). Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Phase kOutProj: x = x_in + W_o attn + b_o; CTA b owns a contiguous range of rows
// (cta_gemv; BF16 or E4M3 weights).
__device__ void phase_out_proj(const MegakernelArgs& a, const LayerArgs& L, bool from_embed,
                               int token, const Smem& s) {
  const int q_dim = a.num_heads * kHeadDim;
  bf16_act_to_smem(s.act, a.attn_out, q_dim);
  __syncthreads();
  const int r_begin = int(int64_t(a.hidden) * blockIdx.x / gridDim.x);
  const int r_end = int(int64_t(a.hidden) * (blockIdx.x + 1) / gridDim.x);
  float* red = s.act + align16(q_dim * int(sizeof(float))) / int(sizeof(float));
  const bool fp8 = L.out_scale != nullptr;  // E4M3 weights with per-row scales
  if (fp8) {
    const auto* w = static_cast<const uint8_t*>(L.out_weight);
    cta_gemv<E4m3Weights>([&](int i) { return w + size_t(r_begin + i) * q_dim; }, r_end - r_begin,
                          s.act, q_dim, red);
  } else {
    const auto* w = static_cast<const uint16_t*>(L.out_weight);
    cta_gemv<Bf16Weights>([&](int i) { return w + size_t(r_begin + i) * q_dim; }, r_end - r_begin,
                          s.act, q_dim, red);
  }
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  for (int i = threadIdx.x; i < r_end - r_begin; i += kThreads) {
    const int row = r_begin + i;
    const float o = fp8 ? sum_splits(red, i) * fp8_row_factor(L.out_scale, row) : sum_splits(red, i);
    const float x_in = from_embed ? bf16_bits_to_float(emb[row]) : ld_act(a.x + row);
    a.x[row] = x_in + (o + bf16_bits_to_float(L.out_bias[row]));
  }
}

}  // namespace gptoss::mk::kernel
