// attention_decode.cuh — single-query attention of one KV head group (FACTS.md 3, step 2.4): the
// kAttnGroup query heads that share one K/V head (GQA 8:1: query head h uses KV head h / 8) attend
// at position pos over keys [key_begin, key_end) (attention_key_begin gives the 128-key window of
// sliding layers). Logits are (q . k) * scale; the per-head sink is one extra logit that enters
// only attention_finalize, so a key range split over any number of CTAs counts it exactly once.
// The current position's k/v come from the QKV output (k_cur/v_cur), never from the cache.
// FP32 math in base 2 (q is pre-multiplied by scale * log2(e)); an online-softmax state per head
// (SoftmaxPartial: m, l, acc) with merge(). Block scope; sizes in the functions' contracts.
#pragma once

#include "device_ops/numeric.cuh"
#include "device_ops/reduce.cuh"

namespace gptoss::dev {

inline constexpr int kAttnHeadDim = 64;   // head_dim (ModelConfig::head_dim)
inline constexpr int kAttnGroup = 8;      // num_heads / num_kv_heads
inline constexpr int kAttnWarpKeys = 2 * kWarpSize;  // keys per warp tile (2 per lane)
inline constexpr float kLog2e = 1.4426950408889634f;
static_assert(kAttnHeadDim == 2 * kWarpSize, "the PV loop gives each lane two dimensions");
static_assert(kAttnGroup == 8, "p is moved as two float4 per key");
static_assert(kAttnWarpKeys * kAttnGroup == kAttnGroup * kAttnHeadDim,
              "a warp's p tile is reused for its acc when the warps merge");

// A partial state of one head over some keys, base 2: m = max logit (-inf when no keys),
// l = sum 2^(logit - m), acc = sum 2^(logit - m) v[d] for one dimension d.
struct SoftmaxPartial {
  float m;
  float l;
  float acc;
};

__device__ __forceinline__ SoftmaxPartial merge(const SoftmaxPartial& a, const SoftmaxPartial& b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return a;  // both empty
  const float sa = exp2f(a.m - m), sb = exp2f(b.m - m);
  return {m, a.l * sa + b.l * sb, a.acc * sa + b.acc * sb};
}

// Adds the sink (a logit without a value, already in base 2) and returns the attention output.
__device__ __forceinline__ float finalize_with_sink(const SoftmaxPartial& s, float sink_log2) {
  const float m = fmaxf(s.m, sink_log2);
  const float c = exp2f(s.m - m);
  return s.acc * c / (s.l * c + exp2f(sink_log2 - m));
}

// The first key position visible from pos: window keys including pos itself on sliding layers.
__device__ __forceinline__ int attention_key_begin(int pos, bool sliding, int window) {
  return sliding ? max(0, pos - window + 1) : 0;
}

// Where this KV head's keys and values are.
struct AttnKv {
  const bf16* k_cache;  // slot s at k_cache + s * stride, kAttnHeadDim values (post-RoPE)
  const bf16* v_cache;
  int64_t stride;       // elements between consecutive slots
  int ring_slots;       // 0: slot = position; else slot = position % ring_slots
  const bf16* k_cur;    // [kAttnHeadDim] this position's k from the QKV output
  const bf16* v_cur;
  int pos;              // the current position
};

// Global layout of one block's partial result: per head h, floats [m, l, acc[kAttnHeadDim]].
inline constexpr int kAttnPartialHeadFloats = 2 + kAttnHeadDim;
inline constexpr int kAttnPartialFloats = kAttnGroup * kAttnPartialHeadFloats;

// Shared memory of block_attention_partial / block_attention for a block of num_warps warps.
__host__ __device__ constexpr int attention_smem_bytes(int num_warps) {
  return int(sizeof(float)) * (kAttnGroup * kAttnHeadDim                  // q
                               + num_warps * kAttnWarpKeys * kAttnGroup   // p, then warp acc
                               + 2 * num_warps * kAttnGroup               // warp m, l
                               + kAttnPartialFloats);                     // block partial
}

namespace detail {
__device__ __forceinline__ const bf16* attn_row(const bf16* cache, const bf16* cur, const AttnKv& kv,
                                                int j) {
  if (j == kv.pos) return cur;
  const int slot = kv.ring_slots ? j % kv.ring_slots : j;
  return cache + int64_t(slot) * kv.stride;
}
}  // namespace detail

// Block scope: the partial state of the kAttnGroup heads over keys [key_begin, key_end), written to
// out (kAttnPartialFloats, global or shared memory). q = [kAttnGroup][kAttnHeadDim] bf16 (this
// group's query heads, post-RoPE); scale = 1/sqrt(head_dim). Warps take tiles of kAttnWarpKeys keys:
// for q.k each lane handles two keys (q from shared memory, broadcast), for p.v each lane two of the
// 64 dimensions. Contract: all threads call; blockDim.x % kWarpSize == 0; smem =
// attention_smem_bytes(num_warps()) bytes, 16-byte aligned; k/v rows 16-byte aligned. An empty
// range gives m = -inf, l = 0, acc = 0. __syncthreads() inside; one on exit (out complete).
__device__ inline void block_attention_partial(float* out, const bf16* q, float scale,
                                               const AttnKv& kv, int key_begin, int key_end,
                                               float* smem) {
  const int lane = lane_id(), warp = warp_id(), nw = num_warps();
  float* q_s = smem;                                           // [group][dim]
  float* p_s = q_s + kAttnGroup * kAttnHeadDim;                // [warp][key][group]
  float* wm_s = p_s + nw * kAttnWarpKeys * kAttnGroup;         // [warp][group]
  float* wl_s = wm_s + nw * kAttnGroup;                        // [warp][group]
  const float qscale = scale * kLog2e;
  for (int i = int(threadIdx.x); i < kAttnGroup * kAttnHeadDim; i += int(blockDim.x)) {
    q_s[i] = bf16_to_float(q[i]) * qscale;
  }
  __syncthreads();

  float m[kAttnGroup], l[kAttnGroup], acc[kAttnGroup][2];
#pragma unroll
  for (int h = 0; h < kAttnGroup; ++h) m[h] = -INFINITY, l[h] = 0.0f, acc[h][0] = acc[h][1] = 0.0f;
  float* p_w = p_s + warp * kAttnWarpKeys * kAttnGroup;

  for (int tile = key_begin + warp * kAttnWarpKeys; tile < key_end; tile += nw * kAttnWarpKeys) {
    // q . k: lane owns keys tile + lane and tile + 32 + lane.
    float s[2][kAttnGroup];
    uint4 kr[2][kAttnHeadDim / 8];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int j = tile + u * kWarpSize + lane;
      const uint4* row = reinterpret_cast<const uint4*>(
          detail::attn_row(kv.k_cache, kv.k_cur, kv, j < key_end ? j : key_begin));
#pragma unroll
      for (int c = 0; c < kAttnHeadDim / 8; ++c) kr[u][c] = row[c];
#pragma unroll
      for (int h = 0; h < kAttnGroup; ++h) s[u][h] = 0.0f;
    }
#pragma unroll
    for (int c = 0; c < kAttnHeadDim / 8; ++c) {
      float kf[2][8];
      bf16x8_to_float(kr[0][c], kf[0]);
      bf16x8_to_float(kr[1][c], kf[1]);
#pragma unroll
      for (int h = 0; h < kAttnGroup; ++h) {
        const float4 qa = *reinterpret_cast<const float4*>(q_s + h * kAttnHeadDim + 8 * c);
        const float4 qb = *reinterpret_cast<const float4*>(q_s + h * kAttnHeadDim + 8 * c + 4);
        const float qv[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
        for (int u = 0; u < 2; ++u) {
#pragma unroll
          for (int i = 0; i < 8; ++i) s[u][h] = fmaf(qv[i], kf[u][i], s[u][h]);
        }
      }
    }
    // Online softmax; m is warp-uniform, l is kept per lane and summed at the end.
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      if (tile + u * kWarpSize + lane >= key_end) {
#pragma unroll
        for (int h = 0; h < kAttnGroup; ++h) s[u][h] = -INFINITY;
      }
    }
float p[2][kAttnGroup];
#pragma unroll
    for (int h = 0; h < kAttnGroup; ++h) {
      const float m_new = fmaxf(m[h], warp_max(fmaxf(s[0][h], s[1][h])));  // finite: key `tile` is valid
      const float corr = exp2f(m[h] - m_new);
      p[0][h] = exp2f(s[0][h] - m_new);
      p[1][h] = exp2f(s[1][h] - m_new);
      l[h] = l[h] * corr + p[0][h] + p[1][h];
      acc[h][0] *= corr;
      acc[h][1] *= corr;
      m[h] = m_new;
    }
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      float4* dst = reinterpret_cast<float4*>(p_w + (u * kWarpSize + lane) * kAttnGroup);
      dst[0] = make_float4(p[u][0], p[u][1], p[u][2], p[u][3]);
      dst[1] = make_float4(p[u][4], p[u][5], p[u][6], p[u][7]);
    }
    sync_warp();
    // p . v: lane owns dimensions 2 lane and 2 lane + 1.
    const int nk = min(kAttnWarpKeys, key_end - tile);
#pragma unroll 8
    for (int i = 0; i < kAttnWarpKeys; ++i) {
      if (i < nk) {
        const bf16* row = detail::attn_row(kv.v_cache, kv.v_cur, kv, tile + i);
        const uint32_t v2 = reinterpret_cast<const uint32_t*>(row)[lane];
        const float v0 = bf16x2_lo(v2), v1 = bf16x2_hi(v2);
        const float4 pa = *reinterpret_cast<const float4*>(p_w + i * kAttnGroup);
        const float4 pb = *reinterpret_cast<const float4*>(p_w + i * kAttnGroup + 4);
        const float pv[8] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
        for (int h = 0; h < kAttnGroup; ++h) {
          acc[h][0] = fmaf(pv[h], v0, acc[h][0]);
          acc[h][1] = fmaf(pv[h], v1, acc[h][1]);
        }
      }
    }
    sync_warp();
  }

  // Merge the warps: each warp's state goes to shared memory (acc into its own p region).
#pragma unroll
  for (int h = 0; h < kAttnGroup; ++h) {
    const float lsum = warp_sum(l[h]);
    if (lane == 0) {
      wm_s[warp * kAttnGroup + h] = m[h];
      wl_s[warp * kAttnGroup + h] = lsum;
    }
    p_w[h * kAttnHeadDim + 2 * lane] = acc[h][0];
    p_w[h * kAttnHeadDim + 2 * lane + 1] = acc[h][1];
  }
  __syncthreads();
  for (int item = int(threadIdx.x); item < kAttnGroup * kAttnHeadDim; item += int(blockDim.x)) {
    const int h = item / kAttnHeadDim, d = item % kAttnHeadDim;
    SoftmaxPartial st{-INFINITY, 0.0f, 0.0f};
    for (int w = 0; w < nw; ++w) {
      const SoftmaxPartial ws{wm_s[w * kAttnGroup + h], wl_s[w * kAttnGroup + h],
                              p_s[w * kAttnWarpKeys * kAttnGroup + h * kAttnHeadDim + d]};
      st = merge(st, ws);
    }
    float* oh = out + h * kAttnPartialHeadFloats;
    if (d == 0) oh[0] = st.m, oh[1] = st.l;
    oh[2 + d] = st.acc;
  }
  __syncthreads();
}

// Block scope: merges num_partials partial states (partial c of this group at
// partials + c * partial_stride floats, layout kAttnPartialFloats), adds each head's sink once and
// writes out = [kAttnGroup][kAttnHeadDim] bf16. sinks = this group's kAttnGroup sink logits (bf16,
// natural log units). All threads call; no shared memory; no __syncthreads().
__device__ inline void attention_finalize(bf16* out, const float* partials, int num_partials,
                                          int64_t partial_stride, const bf16* sinks) {
  for (int item = int(threadIdx.x); item < kAttnGroup * kAttnHeadDim; item += int(blockDim.x)) {
    const int h = item / kAttnHeadDim, d = item % kAttnHeadDim;
    SoftmaxPartial st{-INFINITY, 0.0f, 0.0f};
    for (int c = 0; c < num_partials; ++c) {
      const float* ph = partials + c * partial_stride + h * kAttnPartialHeadFloats;
      st = merge(st, SoftmaxPartial{ph[0], ph[1], ph[2 + d]});
    }
    out[item] = float_to_bf16(finalize_with_sink(st, bf16_to_float(sinks[h]) * kLog2e));
  }
}

// Block scope, one CTA for the whole key range: partial state in shared memory, then finalize.
// smem = attention_smem_bytes(num_warps()) bytes. One __syncthreads() on exit.
__device__ inline void block_attention(bf16* out, const bf16* q, float scale, const AttnKv& kv,
                                       int key_begin, int key_end, const bf16* sinks, float* smem) {
  float* partial = smem + (attention_smem_bytes(num_warps()) / int(sizeof(float)) - kAttnPartialFloats);
  block_attention_partial(partial, q, scale, kv, key_begin, key_end, smem);
  attention_finalize(out, partial, 1, 0, sinks);
  __syncthreads();
}

}  // namespace gptoss::dev
