// phase_lm_head.cuh — after the last layer: the final RMSNorm and the LM head with a fused argmax
// (the last CTA to finish reduces the CTAs' bests; ordering through device_ops/atomics.cuh).
// Block scope.
#pragma once

#include "device_ops/atomics.cuh"
#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Final norm and LM head (BF16, or E4M3 with per-row scales) with a fused argmax: each warp keeps its best (value, lowest index)
// over its rows, each CTA its best over its warps; the last CTA to finish (counter) reduces the
// CTAs and writes the token. Logits are stored only when a.logits is set.
// One warp's rows of the LM head: its best (value, lowest index); logits stored when requested.
// W: Bf16Weights, or E4m3Weights with `scales`.
template <class W>
__device__ __forceinline__ void lm_head_rows(const MegakernelArgs& a, const Smem& s,
                                             const WarpCoords& w, const float* scales,
                                             float& best_v, int& best_i) {
  const auto* weights = static_cast<const typename W::Elem*>(a.lm_head);
  for (int row = w.global_warp; row < a.vocab_size; row += w.num_warps) {
    float v = warp_dot<W>(weights + size_t(row) * a.hidden, s.act, a.hidden);
    if (scales) v *= fp8_row_factor(scales, row);
    if (a.logits && w.lane == 0) a.logits[row] = v;
    if (v > best_v) {  // rows ascend per warp, so '>' keeps the lowest index on ties
      best_v = v;
      best_i = row;
    }
  }
}

__device__ void phase_lm_head(const MegakernelArgs& a, const Smem& s) {
  rmsnorm_to_smem(s.act, a.x, nullptr, a.final_norm, a.hidden, a.rms_norm_eps, s);
  const WarpCoords w = warp_coords();
  float best_v = -INFINITY;
  int best_i = -1;
  if (a.lm_head_scale) {  // E4M3 weights with per-row scales
    lm_head_rows<E4m3Weights>(a, s, w, a.lm_head_scale, best_v, best_i);
  } else {
    lm_head_rows<Bf16Weights>(a, s, w, nullptr, best_v, best_i);
  }
  float* vals = s.scratch;
  int* idxs = reinterpret_cast<int*>(s.scratch + kWarps);
  if (w.lane == 0) {
    vals[w.warp] = best_v;
    idxs[w.warp] = best_i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float bv = -INFINITY;
    int bi = -1;
    for (int q = 0; q < kWarps; ++q) {
      if (idxs[q] >= 0 && (bi < 0 || vals[q] > bv || (vals[q] == bv && idxs[q] < bi))) {
        bv = vals[q];
        bi = idxs[q];
      }
    }
    a.cta_best_val[blockIdx.x] = bv;
    a.cta_best_idx[blockIdx.x] = bi;
    uint32_t* counter = a.counters + a.num_kv_heads;
    // Publishes this CTA's best; the acquire half makes the last CTA observe every other CTA's.
    const uint32_t prev = dev::fetch_add_acq_rel(counter, 1u);
    if (prev == gridDim.x - 1) {
      dev::st_relaxed(counter, 0u);  // every CTA arrived: reset for the next step
      bv = -INFINITY;
      bi = -1;
      for (int c = 0; c < int(gridDim.x); ++c) {
        const float v = dev::load_l2(a.cta_best_val + c);
        const int i = dev::load_l2(a.cta_best_idx + c);
        if (i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi))) {
          bv = v;
          bi = i;
        }
      }
      *a.token_out = bi;  // -1 when every logit was NaN: the host reports it
      if (a.phase_times) a.phase_times[lm_head_end_slot(a.num_layers)] = dev::global_timer_ns();
    }
  }
}

}  // namespace gptoss::mk::kernel
