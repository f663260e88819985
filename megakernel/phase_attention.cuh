// phase_attention.cuh — phase kAttention: single-query GQA attention of this position over the
// KV cache, with sinks and the 128-key window on sliding layers; split-KV over CTAs with a merge by
// the last split of each KV head (counters ordered through device_ops/atomics.cuh). Block scope.
#pragma once

#include "device_ops/atomics.cuh"
#include "megakernel/kernel_common.cuh"

namespace gptoss::mk::kernel {

// Phase kAttention: CTA b handles KV head b / max_splits and split b % max_splits of the key
// range. Inside, kHeadSets warps share each tile of 32 keys (one key per lane for the scores, two
// dimensions per lane for the values), each with a share of the group's query heads, online
// softmax per head. Warp states merge in shared memory; with one split the CTA
// finishes the heads itself, otherwise the split state goes to global memory and the last split
// CTA of a KV head (counter) merges the splits; the sink counts exactly once either way. The
// current position's k and v come from the qkv buffer, never from the cache.
//
// kHeadSets warps share a key tile (each with group / kHeadSets query heads), so a CTA covers
// kWarps / kHeadSets tiles of 32 keys per pass. A split takes kKeysPerSplit keys (more when the
// splits run out); the dispatcher below picks 4 sets when a split fits in one pass of 4 tile
// slots (short contexts, sliding layers: every warp busy, each with half the chain of 2 sets) and
// 2 sets otherwise (long splits: 8 tiles per pass). H100, 120b at 1K: 16.3 -> 14.3 us per layer
// (docs/PERF.md, session 7).
constexpr int kKeysPerSplit = 128;

template <int kHeadSets>
__device__ void attention_splits(const MegakernelArgs& a, const LayerArgs& L, const Smem& s,
                                 int n_keys, int n_splits) {
  constexpr int kHeadsPerWarp = kMaxGroup / kHeadSets;
  const int group = a.num_heads / a.num_kv_heads;
  const int first_pos = a.pos + 1 - n_keys;
  const int g = blockIdx.x / a.max_splits, split = blockIdx.x % a.max_splits;
  const WarpCoords w = warp_coords();
  const int q_dim = a.num_heads * kHeadDim, kv_dim = a.num_kv_heads * kHeadDim;

  reset_mark_max(a, s, Mark::kAttnMergeAll);
  float* q_s = s.act;                                  // [group][64]
  float* warp_state = s.act + kMaxGroup * kHeadDim;    // [kWarps][group][66]
  for (int idx = threadIdx.x; idx < group * kHeadDim; idx += kThreads) {
    q_s[idx] = bf16_bits_to_float(ld_act(a.qkv + g * group * kHeadDim + idx));
  }
  __syncthreads();
  mark(a, s, Mark::kAttnQ);

  const int k_begin = int((long long)split * n_keys / n_splits);
  const int k_end = int((long long)(split + 1) * n_keys / n_splits);
  const uint16_t* cur_k = a.qkv + q_dim + g * kHeadDim;
  const uint16_t* cur_v = a.qkv + q_dim + kv_dim + g * kHeadDim;
  const uint16_t* kc = L.k_cache + size_t(g) * L.kv_capacity * kHeadDim;
  const uint16_t* vc = L.v_cache + size_t(g) * L.kv_capacity * kHeadDim;
  auto key_ptr = [&](int j, bool value) -> const uint16_t* {
    const int p = first_pos + j;
    if (p == a.pos) return value ? cur_v : cur_k;
    const int slot = L.sliding ? p % L.kv_capacity : p;
    return (value ? vc : kc) + size_t(slot) * kHeadDim;
  };

  // Per-warp V tile: 32 keys x 64 BF16, copied global -> shared with cp.async while the scores
  // are computed; 16-byte units of row j are XOR-swizzled by (j & 7) so that both the copy and
  // the per-key reads are free of bank conflicts.
  uint4* v_tile = reinterpret_cast<uint4*>(warp_state + kWarps * kMaxGroup * (kHeadDim + 2)) +
                  w.warp * 32 * (kHeadDim / 8);
  const uint32_t* v_words = reinterpret_cast<const uint32_t*>(v_tile);
  // kHeadSets warps share a key tile: warp w takes query heads [hs * hpw, hs * hpw + hpw) of the
  // group (hs = w % kHeadSets), so a tile's scores, softmax and PV chain is that much shorter.
  const int hpw = (group + kHeadSets - 1) / kHeadSets, hs = w.warp % kHeadSets;
  const int tile_slot = w.warp / kHeadSets;
  constexpr int kTileSlots = kWarps / kHeadSets;
  float m[kHeadsPerWarp], l[kHeadsPerWarp], acc[kHeadsPerWarp][2];
#pragma unroll
  for (int h = 0; h < kHeadsPerWarp; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
    acc[h][0] = acc[h][1] = 0.0f;
  }
  // Heads of this warp: hl < nh.
  const int nh = max(0, min(hpw, group - hs * hpw));
  const float* q_w = q_s + hs * hpw * kHeadDim;
  for (int tile = k_begin + tile_slot * 32; tile < k_end; tile += kTileSlots * 32) {
    const int j = tile + w.lane;
    const bool valid = j < k_end;
    float sc[kHeadsPerWarp];
#pragma unroll
    for (int h = 0; h < kHeadsPerWarp; ++h) sc[h] = 0.0f;
    if (valid) {
      const uint4* vp = reinterpret_cast<const uint4*>(key_ptr(j, true));
#pragma unroll
      for (int c = 0; c < kHeadDim / 8; ++c) {
        dev::copy_async_16B(v_tile + w.lane * 8 + (c ^ (w.lane & 7)), vp + c);
      }
    }
    dev::copy_async_commit();
    if (valid) {
      const uint4* kp = reinterpret_cast<const uint4*>(key_ptr(j, false));
      uint4 kv[kHeadDim / 8];
#pragma unroll
      for (int c = 0; c < kHeadDim / 8; ++c) kv[c] = dev::load_l2(kp + c);
#pragma unroll
      for (int c = 0; c < kHeadDim / 8; ++c) {
#pragma unroll
        for (int h = 0; h < kHeadsPerWarp; ++h) {
          if (h < nh) sc[h] += dot8(kv[c], q_w + h * kHeadDim + 8 * c);
        }
      }
    }
    const bool first_tile = tile == k_begin + tile_slot * 32;
    if (first_tile) mark(a, s, Mark::kAttnScores);
    float p[kHeadsPerWarp];
#pragma unroll
    for (int h = 0; h < kHeadsPerWarp; ++h) {
      if (h >= nh) continue;
      const float logit = valid ? sc[h] * kAttnScale : -INFINITY;
      const float m_new = fmaxf(m[h], warp_max(logit));
      const float corr = __expf(m[h] - m_new);  // m[h] = -inf the first time: corr = 0
      p[h] = valid ? __expf(logit - m_new) : 0.0f;
      l[h] = l[h] * corr + warp_sum(p[h]);
      acc[h][0] *= corr;
      acc[h][1] *= corr;
      m[h] = m_new;
    }
    if (first_tile) mark(a, s, Mark::kAttnSoftmax);
    dev::copy_async_wait_all();
    dev::sync_warp();
    if (first_tile) mark(a, s, Mark::kAttnVWait);
    const int n_in_tile = min(32, k_end - tile);
#pragma unroll 8
    for (int jj = 0; jj < n_in_tile; ++jj) {
      const uint32_t vv = v_words[(jj * 8 + ((w.lane >> 2) ^ (jj & 7))) * 4 + (w.lane & 3)];
      const float v0 = bf_lo(vv), v1 = bf_hi(vv);
#pragma unroll
      for (int h = 0; h < kHeadsPerWarp; ++h) {
        if (h >= nh) continue;
        const float ph = dev::shfl(p[h], jj);
        acc[h][0] = fmaf(ph, v0, acc[h][0]);
        acc[h][1] = fmaf(ph, v1, acc[h][1]);
      }
    }
    dev::sync_warp();  // the next tile's copies overwrite v_tile
  }
  mark(a, s, Mark::kAttnTiles);
  mark_max(a, s, Mark::kAttnTilesAll, /*any_cta=*/true);
  // Warp states -> shared memory; the heads of the other set are marked empty (m = -inf).
  constexpr int kState = kHeadDim + 2;
  for (int h = 0; h < group; ++h) {
    float* st = warp_state + (w.warp * kMaxGroup + h) * kState;
    const int hl = h - hs * hpw;
    if (hl < 0 || hl >= nh) {
      if (w.lane == 0) st[kHeadDim] = -INFINITY;
      continue;
    }
#pragma unroll
    for (int q = 0; q < kHeadsPerWarp; ++q) {
      if (q != hl) continue;
      st[2 * w.lane] = acc[q][0];
      st[2 * w.lane + 1] = acc[q][1];
      if (w.lane == 0) {
        st[kHeadDim] = m[q];
        st[kHeadDim + 1] = l[q];
      }
    }
  }
  __syncthreads();
  // Merge the warps of this CTA: one thread per (head, dim). With a single split this CTA
  // finishes the head itself (sink, normalisation); otherwise it publishes its split state and
  // the last split CTA of KV head g (counter g) merges the splits.
  float* partial = a.attn_partial + (size_t(g) * a.max_splits + split) * kMaxGroup * kState;
  for (int idx = threadIdx.x; idx < group * kHeadDim; idx += kThreads) {
    const int h = idx / kHeadDim, d = idx % kHeadDim;
    float mm = -INFINITY;
    for (int ww = 0; ww < kWarps; ++ww) mm = fmaxf(mm, warp_state[(ww * kMaxGroup + h) * kState + kHeadDim]);
    float ll = 0.0f, aa = 0.0f;
    for (int ww = 0; ww < kWarps; ++ww) {
      const float* st = warp_state + (ww * kMaxGroup + h) * kState;
      if (st[kHeadDim] == -INFINITY) continue;  // a warp without keys
      const float f = __expf(st[kHeadDim] - mm);
      ll += st[kHeadDim + 1] * f;
      aa += st[d] * f;
    }
    if (n_splits == 1) {
      const float sink = bf16_bits_to_float(L.sinks[g * group + h]);
      const float m2 = fmaxf(sink, mm);
      const float f = __expf(mm - m2);
      const float l2 = __expf(sink - m2) + ll * f;
      a.attn_out[(g * group + h) * kHeadDim + d] = float_to_bf16_bits((aa * f) / l2);
      continue;
    }
    partial[h * kState + d] = aa;
    if (d == 0) {
      partial[h * kState + kHeadDim] = mm;
      partial[h * kState + kHeadDim + 1] = ll;
    }
  }
  mark(a, s, Mark::kAttnCtaMerge);
  mark_max(a, s, Mark::kAttnMergeAll);
  if (n_splits == 1) return;
  // Publish this split; the last split CTA of KV head g merges (counter g). One release per CTA
  // (thread 0, after the CTA barrier): a fence in all 512 threads of up to 128 CTAs cost ~40 us
  // per layer at 32K keys.
  __syncthreads();
  mark(a, s, Mark::kAttnSync);
  if (threadIdx.x == 0) {
    // Publishes this CTA's split state (every thread's stores, ordered by the CTA barrier above:
    // the release is cumulative). Observed by the acquire half of the last split's add, which then
    // reads every split's state below.
    const uint32_t prev = dev::fetch_add_acq_rel(a.counters + g, 1u);
    const int last = prev == uint32_t(n_splits - 1);
    if (last) dev::st_relaxed(a.counters + g, 0u);  // all splits arrived: reset for the next layer
    *s.flag = last;
  }
  mark(a, s, Mark::kAttnFence);
  __syncthreads();
  mark(a, s, Mark::kAttnPublish);
  if (!*s.flag) return;
  // Every split's state into shared memory with all loads in flight at once (the warp-state
  // region is free now: n_splits <= kWarps, checked at launch), then the merge from there.
  const float* parts = a.attn_partial + size_t(g) * a.max_splits * kMaxGroup * kState;
  float* states = warp_state;  // [n_splits][kMaxGroup][kState]
  const int total = n_splits * kMaxGroup * kState;
  for (int i0 = threadIdx.x; i0 < total; i0 += kThreads * kLoadBatch) {
    float v[kLoadBatch];
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = i0 + u * kThreads;
      v[u] = i < total ? dev::load_l2(parts + i) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = i0 + u * kThreads;
      if (i < total) states[i] = v[u];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * kHeadDim; idx += kThreads) {
    const int h = idx / kHeadDim, d = idx % kHeadDim;
    const float sink = bf16_bits_to_float(L.sinks[g * group + h]);
    float mm = sink;
    for (int sp = 0; sp < n_splits; ++sp) mm = fmaxf(mm, states[(sp * kMaxGroup + h) * kState + kHeadDim]);
    float ll = __expf(sink - mm), aa = 0.0f;
    for (int sp = 0; sp < n_splits; ++sp) {
      const float* st = states + (sp * kMaxGroup + h) * kState;
      const float f = __expf(st[kHeadDim] - mm);
      ll += st[kHeadDim + 1] * f;
      aa += st[d] * f;
    }
    a.attn_out[(g * group + h) * kHeadDim + d] = float_to_bf16_bits(aa / ll);
  }
  mark(a, s, Mark::kAttnSplitMerge);
}

__device__ void phase_attention(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int n_keys = L.sliding ? min(a.pos + 1, a.sliding_window) : a.pos + 1;
  int n_splits = (n_keys + kKeysPerSplit - 1) / kKeysPerSplit;
  n_splits = n_splits < 1 ? 1 : (n_splits > a.max_splits ? a.max_splits : n_splits);
  const int g = blockIdx.x / a.max_splits, split = blockIdx.x % a.max_splits;
  if (g >= a.num_kv_heads || split >= n_splits) return;
  // Uniform over the grid (n_keys and n_splits are), so every CTA of a KV head agrees.
  constexpr int kShortSets = 4, kLongSets = 2;
  if ((n_keys + n_splits - 1) / n_splits <= (kWarps / kShortSets) * 32) {
    attention_splits<kShortSets>(a, L, s, n_keys, n_splits);
  } else {
    attention_splits<kLongSets>(a, L, s, n_keys, n_splits);
  }
}

}  // namespace gptoss::mk::kernel
