// phase_out_proj.cuh — phase kOutProj: x = x_in + W_o attn + b_o (the FP32 residual; x_in is the
// embedding row at layer 0). Block scope. Work: the CTA's contiguous share of output rows from its
// weight stream (a slot = whole rows), so each row is written by one CTA. The rows' biases and
// residual inputs are loaded at the start, with the attention output.
#pragma once

#include "megakernel/kernel_common.cuh"
#include "megakernel/weight_ring.cuh"

namespace gptoss::mk::kernel {

__device__ void phase_out_proj(const MegakernelArgs& a, const LayerArgs& L, int layer,
                               bool from_embed, int token, const Smem& s, WeightStream& ws) {
  const int q_dim = a.num_heads * kHeadDim;
  const WorkSegment sg = ws.segment(int(Phase::kOutProj));
  const int row0 = int(sg.first);
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  // ep[2i], ep[2i + 1] = bias and residual input of row row0 + i.
  float pre[kEpiloguePerThread];
  const int n_ep = 2 * int(segment_units(sg));
  epilogue_load(pre, n_ep, [&](int e) {
    const int row = row0 + e / 2;
    if (e % 2 == 0) return bf16_bits_to_float(L.out_bias[row]);
    return from_embed ? bf16_bits_to_float(emb[row]) : ld_act(a.x + row);
  });
  // The attention output, bf16 as stored, into s.vec (16-byte loads at L2: other CTAs wrote it).
  for (int c = int(threadIdx.x); c < q_dim / 8; c += kThreads) {
    reinterpret_cast<uint4*>(s.vec)[c] = dev::load_l2(reinterpret_cast<const uint4*>(a.attn_out) + c);
  }
  consumer_sync();
  consume_segment(
      a, s, ws, sg, layer, pre, n_ep,
      [&](const WorkItem& it, const uint8_t* w, float* red) {
        slot_gemv_bf16(red, w, int(it.count), q_dim, s.vec);
      },
      [&](uint32_t, const WorkItem& it, const float* red) {
        const int i = int(threadIdx.x);
        if (i >= int(it.count)) return;
        const int row = int(it.first) + i;
        const float* e = s.ep + 2 * (row - row0);
        a.x[row] = e[1] + (slot_row_sum(red, i) + e[0]);
      });
}

}  // namespace gptoss::mk::kernel
