// phase_lm_head.cuh — after the last layer: the final RMSNorm and the LM head with a fused argmax.
// Block scope. Work: the CTA's contiguous range of vocabulary rows from its weight stream (its
// first slots arrive during the last layer). Each row thread keeps its best (value, lowest index),
// the CTA reduces them, and the last CTA to finish (counter) reduces the CTAs and writes the
// token. Logits are stored only when a.logits is set.
#pragma once

#include "device_ops/atomics.cuh"
#include "megakernel/kernel_common.cuh"
#include "megakernel/weight_ring.cuh"

namespace gptoss::mk::kernel {

// (v, i) beats (bv, bi): larger value, or equal value and lower index; -1 = none.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi));
}

__device__ void phase_lm_head(const MegakernelArgs& a, const Smem& s, WeightStream& ws) {
  rmsnorm_to_smem(s.act, a.x, nullptr, a.final_norm, a.hidden, a.rms_norm_eps, s, s.vec);
  float best_v = -INFINITY;
  int best_i = -1;
  const float pre[kEpiloguePerThread] = {};
  consume_segment(
      a, s, ws, ws.segment(kLmHeadPhase), a.num_layers, pre, 0,
      [&](const WorkItem& it, const uint8_t* w, float* red) {
        slot_gemv_bf16(red, w, int(it.count), a.hidden, s.vec);
      },
      [&](uint32_t, const WorkItem& it, const float* red) {
        const int r = int(threadIdx.x);
        if (r >= int(it.count)) return;
        const int row = int(it.first) + r;
        const float v = slot_row_sum(red, r);
        if (a.logits) a.logits[row] = v;
        if (v > best_v) {  // a thread's rows ascend, so '>' keeps the lowest index on ties
          best_v = v;
          best_i = row;
        }
      });
  float* vals = s.scratch;
  int* idxs = reinterpret_cast<int*>(s.scratch + kWarps);
  if (threadIdx.x < kWarps) {
    vals[threadIdx.x] = best_v;
    idxs[threadIdx.x] = best_i;
  }
  consumer_sync();
  if (threadIdx.x == 0) {
    float bv = -INFINITY;
    int bi = -1;
    for (int q = 0; q < kWarps; ++q) {
      if (better(vals[q], idxs[q], bv, bi)) bv = vals[q], bi = idxs[q];
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
        if (better(v, i, bv, bi)) bv = v, bi = i;
      }
      *a.token_out = bi;  // -1 when every logit was NaN: the host reports it
      if (a.phase_times) a.phase_times[lm_head_end_slot(a.num_layers)] = dev::global_timer_ns();
    }
  }
}

}  // namespace gptoss::mk::kernel
