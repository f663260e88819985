// phase_qkv.cuh — phase kNormQkvRope: t = rmsnorm(x) (or of the embedding row at layer 0),
// qkv = W t + b, YaRN RoPE on q and k, this position's k and v appended to the KV cache.
// Block scope. Work: the CTA's contiguous share of RoPE pairs of QKV rows (i, i + 32) of 64-row
// heads, from its weight stream (a slot = whole pairs), so each CTA finishes its rotations itself.
// The pairs' biases and RoPE values are loaded at the start, during the norm.
#pragma once

#include "megakernel/kernel_common.cuh"
#include "megakernel/weight_ring.cuh"

namespace gptoss::mk::kernel {

__device__ void phase_norm_qkv_rope(const MegakernelArgs& a, const LayerArgs& L, int layer,
                                    bool from_embed, int token, const Smem& s, WeightStream& ws) {
  const int half = kHeadDim / 2;
  const int q_heads = a.num_heads, kv_heads = a.num_kv_heads;
  const float* rope = a.rope_table + size_t(a.pos) * kHeadDim;
  const WorkSegment sg = ws.segment(int(Phase::kNormQkvRope));
  const int pair0 = int(sg.first);
  // ep[4j .. 4j + 3] = bias of row i, bias of row i + 32, cos, sin of pair pair0 + j.
  float pre[kEpiloguePerThread];
  const int n_ep = 4 * int(segment_units(sg));
  epilogue_load(pre, n_ep, [&](int e) {
    const int u = pair0 + e / 4, head = u / half, i = u % half, row = head * kHeadDim + i;
    switch (e % 4) {
      case 0: return bf16_bits_to_float(L.qkv_bias[row]);
      case 1: return bf16_bits_to_float(L.qkv_bias[row + half]);
      case 2: return rope[i];
      default: return rope[half + i];
    }
  });
  const float* x = from_embed ? nullptr : a.x;
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  rmsnorm_to_smem(s.act, x, emb, L.attn_norm, a.hidden, a.rms_norm_eps, s, s.vec);
  mark(a, s, Mark::kQkvNorm);
  reset_mark_max(a, s, Mark::kAttnTilesAll);  // written by every CTA in the attention phase
  const int slot = L.sliding ? a.pos % L.kv_capacity : a.pos;
  consume_segment(
      a, s, ws, sg, layer, pre, n_ep,
      [&](const WorkItem& it, const uint8_t* w, float* red) {
        // Slot rows 2j and 2j + 1 are rows i and i + 32 of pair it.first + j.
        slot_gemv_bf16(red, w, 2 * int(it.count), a.hidden, s.vec);
      },
      [&](uint32_t, const WorkItem& it, const float* red) {
        const int j = int(threadIdx.x);
        if (j >= int(it.count)) return;
        const int u = int(it.first) + j, head = u / half, i = u % half;
        const int row_a = head * kHeadDim + i, row_b = row_a + half;
        const float* e = s.ep + 4 * (u - pair0);
        float va = slot_row_sum(red, 2 * j) + e[0];
        float vb = slot_row_sum(red, 2 * j + 1) + e[1];
        if (head < q_heads + kv_heads) {  // q and k heads are rotated, v heads are not
          const float c = e[2], sn = e[3];
          const float ra = va * c - vb * sn;
          const float rb = vb * c + va * sn;
          va = ra;
          vb = rb;
        }
        const uint16_t ba = float_to_bf16_bits(va), bb = float_to_bf16_bits(vb);
        a.qkv[row_a] = ba;
        a.qkv[row_b] = bb;
        if (head >= q_heads) {
          const bool is_k = head < q_heads + kv_heads;
          const int g = is_k ? head - q_heads : head - q_heads - kv_heads;
          uint16_t* cache = (is_k ? L.k_cache : L.v_cache) + (size_t(g) * L.kv_capacity + slot) * kHeadDim;
          cache[i] = ba;
          cache[i + half] = bb;
        }
      });
  mark(a, s, Mark::kQkvGemv);
}

}  // namespace gptoss::mk::kernel
