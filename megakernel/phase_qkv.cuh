// phase_qkv.cuh — phase kNormQkvRope: t = rmsnorm(x) (or of the embedding row at layer 0),
// qkv = W t + b (W BF16, or E4M3 with per-row scales), YaRN RoPE on q and k, this position's k and v appended to the KV cache. Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Phase kNormQkvRope: t = rmsnorm(x); qkv = W t + b; RoPE on q and k; k, v appended to the cache.
// Unit of work = one RoPE pair of rows (i, i + 32) of one 64-row head; CTA b owns a contiguous
// range of pairs (cta_gemv; BF16 or E4M3 weights) and finishes their rotations itself.
__device__ void phase_norm_qkv_rope(const MegakernelArgs& a, const LayerArgs& L, bool from_embed,
                                    int token, const Smem& s) {
  const float* x = from_embed ? nullptr : a.x;
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  rmsnorm_to_smem(s.act, x, emb, L.attn_norm, a.hidden, a.rms_norm_eps, s);
  mark(a, s, Mark::kQkvNorm);
  reset_mark_max(a, s, Mark::kAttnTilesAll);  // written by every CTA in the attention phase
  const int half = kHeadDim / 2;
  const int q_heads = a.num_heads, kv_heads = a.num_kv_heads;
  const int units = (q_heads + 2 * kv_heads) * half;
  const int u_begin = int(int64_t(units) * blockIdx.x / gridDim.x);
  const int u_end = int(int64_t(units) * (blockIdx.x + 1) / gridDim.x);
  float* red = s.act + align16(a.hidden * int(sizeof(float))) / int(sizeof(float));
  // Local row 2j is row i of the pair u_begin + j, local row 2j + 1 its partner i + 32.
  auto row_of = [&](int i) {
    const int u = u_begin + i / 2;
    return (u / half) * kHeadDim + u % half + (i & 1) * half;
  };
  const bool fp8 = L.qkv_scale != nullptr;  // E4M3 weights with per-row scales
  if (fp8) {
    const auto* w = static_cast<const uint8_t*>(L.qkv_weight);
    cta_gemv<E4m3Weights>([&](int i) { return w + size_t(row_of(i)) * a.hidden; },
                          2 * (u_end - u_begin), s.act, a.hidden, red);
  } else {
    const auto* w = static_cast<const uint16_t*>(L.qkv_weight);
    cta_gemv<Bf16Weights>([&](int i) { return w + size_t(row_of(i)) * a.hidden; },
                          2 * (u_end - u_begin), s.act, a.hidden, red);
  }
  mark(a, s, Mark::kQkvGemv);
  const float* rope = a.rope_table + size_t(a.pos) * kHeadDim;
  const int slot = L.sliding ? a.pos % L.kv_capacity : a.pos;
  for (int j = threadIdx.x; j < u_end - u_begin; j += kThreads) {
    const int u = u_begin + j, head = u / half, i = u % half;
    const int row_a = head * kHeadDim + i, row_b = row_a + half;
    float va = sum_splits(red, 2 * j), vb = sum_splits(red, 2 * j + 1);
    if (fp8) {
      va *= fp8_row_factor(L.qkv_scale, row_a);
      vb *= fp8_row_factor(L.qkv_scale, row_b);
    }
    va += bf16_bits_to_float(L.qkv_bias[row_a]);
    vb += bf16_bits_to_float(L.qkv_bias[row_b]);
    if (head < q_heads + kv_heads) {  // q and k heads are rotated, v heads are not
      const float c = rope[i], sn = rope[half + i];
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
  }
}

}  // namespace gptoss::mk::kernel
