// megakernel.cu — the persistent decode kernel: one cooperative launch runs a whole decode step
// (all layers, the final norm and the LM head with a fused argmax) for one token at batch 1.
// Grid: one CTA of kThreads per SM, all co-resident (checked with the occupancy API at launch).
// Per layer the six phases of megakernel/phases.h run back to back with a grid barrier after
// each (device_ops/grid_barrier.cuh; docs/ARCHITECTURE.md gives the reason for every barrier). Work inside a phase is split
// over all warps of the grid; CTAs recompute cheap things (RMSNorm statistics, the router's
// top-k) instead of synchronising for them.
#include "megakernel/megakernel.h"

#include "device_ops/grid_barrier.cuh"
#include "device_ops/platform.cuh"
#include "host/error.h"
#include "host/gpu.h"  // occupancy queries and the cooperative launch
#include "megakernel/phases.h"

namespace gptoss::mk {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
// Lanes, tiles and shuffles below are written for 32-lane warps (logical warps on wave64 AMD).
static_assert(dev::kWarpSize == 32, "the megakernel's tiles assume 32-lane warps");
constexpr int kHeadDim = 64;        // RoPE tables and attention tiles assume it (checked at launch)
constexpr int kMaxGroup = 8;        // query heads per KV head
constexpr int kMaxTopK = 4;
constexpr int kMaxExperts = 256;
constexpr int kMxBlock = 32;        // MXFP4 / FP8 block length
constexpr int kMxPad = 36;          // padded smem stride per 32-value block (bank-conflict free)
constexpr float kAttnScale = 0.125f;  // 1/sqrt(head_dim)
constexpr float kSwigluAlpha = 1.702f;

// ---- small device helpers -----------------------------------------------------------------

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits16) {
  return __uint_as_float(bits16 << 16);
}
__device__ __forceinline__ float bf_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  return dev::bf16_bits_rn(f);
}
__device__ __forceinline__ float round_bf16(float f) {
  return bf16_bits_to_float(float_to_bf16_bits(f));
}

// Weights are read once per token: stream them past L1.
__device__ __forceinline__ uint4 ld_weight(const uint4* p) { return dev::load_evict_first(p); }
// Activations written by other CTAs in this launch: read at L2 (L1 is not coherent).
__device__ __forceinline__ float ld_act(const float* p) { return dev::load_l2(p); }
__device__ __forceinline__ uint16_t ld_act(const uint16_t* p) { return dev::load_l2(p); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += dev::shfl_xor(v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, dev::shfl_xor(v, o));
  return v;
}

__device__ __forceinline__ int padded(int k) { return (k >> 5) * kMxPad + (k & 31); }

// Shared memory of one CTA (dynamic): a big activation region plus small scratch.
struct Smem {
  float* act;        // activation region (see act_floats())
  double* dscratch;  // [kWarps]
  float* scratch;    // [kWarps * 2]
  float* lut;        // [16] e2m1 values
  int* sel;          // [kMaxTopK] chosen experts
  float* sel_w;      // [kMaxTopK]
  int* flag;         // [1]
};

__host__ __device__ inline int act_floats(int hidden, int q_dim, int topk, int inter) {
  int n = (hidden / kMxBlock) * kMxPad;
  n = n > q_dim ? n : q_dim;
  const int experts = topk * (inter / kMxBlock) * kMxPad;
  n = n > experts ? n : experts;
  const int attn = kMaxGroup * kHeadDim + kWarps * kMaxGroup * (kHeadDim + 2) +
                   kWarps * 32 * kHeadDim / 2;  // q, warp states, per-warp V tiles (bf16 pairs)
  return n > attn ? n : attn;
}

__device__ Smem carve_smem(float* base, const MegakernelArgs& a) {
  Smem s;
  s.act = base;
  float* p = base + act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token,
                               a.intermediate);
  s.dscratch = reinterpret_cast<double*>(p);
  p += 2 * kWarps;
  s.scratch = p;
  p += 2 * kWarps;
  s.lut = p;
  p += 16;
  s.sel = reinterpret_cast<int*>(p);
  p += kMaxTopK;
  s.sel_w = p;
  p += kMaxTopK;
  s.flag = reinterpret_cast<int*>(p);
  return s;
}

// RMSNorm of the residual into shared memory: out[k] = bf16((x_k * r) * gain_k) as floats, with
// r = float(1 / sqrt(mean(x^2) + eps)) and the mean accumulated in FP64 as the CPU reference
// does. `x_f32` is the residual (or null with `x_bf16` the embedding row at layer 0). Layout:
// plain (out[k]) or padded per 32-block (out[padded(k)]) for the MXFP4 GEMVs.
// Block scope; one __syncthreads() on exit.
__device__ void rmsnorm_to_smem(float* out, bool pad, const float* x_f32, const uint16_t* x_bf16,
                                const uint16_t* gain, int n, float eps, const Smem& s) {
  double sum = 0;
  for (int k = threadIdx.x; k < n; k += kThreads) {
    const float v = x_f32 ? ld_act(x_f32 + k) : bf16_bits_to_float(x_bf16[k]);
    sum += double(v) * double(v);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += dev::shfl_xor(sum, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) s.dscratch[warp] = sum;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < kWarps; ++w) total += s.dscratch[w];
  const float r = float(1.0 / sqrt(total / n + double(eps)));
  for (int k = threadIdx.x; k < n; k += kThreads) {
    const float v = x_f32 ? ld_act(x_f32 + k) : bf16_bits_to_float(x_bf16[k]);
    out[pad ? padded(k) : k] = round_bf16((v * r) * bf16_bits_to_float(gain[k]));
  }
  __syncthreads();
}

// FP8 expert-activation encoding (docs/ARCHITECTURE.md): per 32-block, e = ilogb(amax) - 8
// clamped to [-127, 127]; values replaced in place by e4m3(x * 2^-e) * 2^e (saturating RNE), the
// exact values the FP8 GEMV multiplies. One warp per block; __syncthreads() on exit.
__device__ void quantize_fp8_padded(float* t, int n) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int b = warp; b < n / kMxBlock; b += kWarps) {
    float* blk = t + b * kMxPad;
    const float v = blk[lane];
    const float amax = warp_max(fabsf(v));
    float q = 0.0f;
    if (amax > 0.0f) {
      int e = ilogbf(amax) - 8;
      e = e < -127 ? -127 : (e > 127 ? 127 : e);
      const float scaled = ldexpf(v, -e);
      q = ldexpf(dev::e4m3_to_float(dev::float_to_e4m3(scaled)), e);
    }
    dev::sync_warp();
    blk[lane] = q;
  }
  __syncthreads();
}

// Dot products of BF16 weight rows with a plain-layout FP32 vector in shared memory; the
// result is valid in every lane. Two rows at once keep twice the loads in flight.
__device__ __forceinline__ float dot8(uint4 w, const float* t) {
  const float4 a = *reinterpret_cast<const float4*>(t);
  const float4 b = *reinterpret_cast<const float4*>(t + 4);
  float acc = bf_lo(w.x) * a.x;
  acc = fmaf(bf_hi(w.x), a.y, acc);
  acc = fmaf(bf_lo(w.y), a.z, acc);
  acc = fmaf(bf_hi(w.y), a.w, acc);
  acc = fmaf(bf_lo(w.z), b.x, acc);
  acc = fmaf(bf_hi(w.z), b.y, acc);
  acc = fmaf(bf_lo(w.w), b.z, acc);
  acc = fmaf(bf_hi(w.w), b.w, acc);
  return acc;
}

__device__ __forceinline__ void warp_dot2_bf16(const uint16_t* row_a, const uint16_t* row_b,
                                               const float* t, int k, float* out_a,
                                               float* out_b) {
  const int lane = threadIdx.x & 31;
  const uint4* wa = reinterpret_cast<const uint4*>(row_a);
  const uint4* wb = reinterpret_cast<const uint4*>(row_b);
  const int chunks = k / 8;
  float acc_a = 0.0f, acc_b = 0.0f;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) {
    const uint4 va = ld_weight(wa + c);
    const uint4 vb = ld_weight(wb + c);
    acc_a += dot8(va, t + 8 * c);
    acc_b += dot8(vb, t + 8 * c);
  }
  *out_a = warp_sum(acc_a);
  *out_b = warp_sum(acc_b);
}

__device__ __forceinline__ float warp_dot_bf16(const uint16_t* row, const float* t, int k) {
  const int lane = threadIdx.x & 31;
  const uint4* w = reinterpret_cast<const uint4*>(row);
  const int chunks = k / 8;
  float acc = 0.0f;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) acc += dot8(ld_weight(w + c), t + 8 * c);
  return warp_sum(acc);
}

// One 32-value MXFP4 block (16 bytes) against 32 padded activations, unscaled. The padded
// stride (kMxPad floats) keeps each lane's 16-byte activation reads in distinct banks.
__device__ __forceinline__ float mx_block_dot(uint4 w, const float* t, const float* lut) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
  float acc = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float4 t0 = *reinterpret_cast<const float4*>(t + 8 * i);
    const float4 t1 = *reinterpret_cast<const float4*>(t + 8 * i + 4);
    const uint32_t v = words[i];
    acc = fmaf(lut[v & 0xfu], t0.x, acc);
    acc = fmaf(lut[(v >> 4) & 0xfu], t0.y, acc);
    acc = fmaf(lut[(v >> 8) & 0xfu], t0.z, acc);
    acc = fmaf(lut[(v >> 12) & 0xfu], t0.w, acc);
    acc = fmaf(lut[(v >> 16) & 0xfu], t1.x, acc);
    acc = fmaf(lut[(v >> 20) & 0xfu], t1.y, acc);
    acc = fmaf(lut[(v >> 24) & 0xfu], t1.z, acc);
    acc = fmaf(lut[v >> 28], t1.w, acc);
  }
  return acc;
}

__device__ __forceinline__ float e8m0(uint32_t s) {
  return s == 0 ? __uint_as_float(1u << 22) : __uint_as_float(s << 23);
}

// Dot products of up to four MXFP4 rows ([K/32][16] bytes + [K/32] scales) with one padded
// FP32 vector; all rows' loads are issued before any arithmetic so that a warp keeps up to
// 4 x ceil(K/32/32) 16-byte loads in flight. Results valid in every lane.
__device__ __forceinline__ void warp_dot4_mxfp4(const uint8_t* const* blocks,
                                                const uint8_t* const* scales, int num_rows,
                                                const float* t, int k, const float* lut,
                                                float* out) {
  const int lane = threadIdx.x & 31;
  const int nblk = k / kMxBlock;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int c = lane; c < nblk; c += 32) {
    uint4 v[4];
    float sc[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      if (r < num_rows) {
        v[r] = ld_weight(reinterpret_cast<const uint4*>(blocks[r]) + c);
        sc[r] = e8m0(dev::load_evict_first(scales[r] + c));
      }
    }
    const float* tc = t + c * kMxPad;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      if (r < num_rows) acc[r] = fmaf(mx_block_dot(v[r], tc, lut), sc[r], acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    if (r < num_rows) out[r] = warp_sum(acc[r]);
  }
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit) {
  const float g = fminf(gate, limit);
  const float u = fmaxf(fminf(up, limit), -limit);
  return g / (1.0f + __expf(-kSwigluAlpha * g)) * (u + 1.0f);
}

struct WarpCoords {
  int lane, warp, global_warp, num_warps;
};

__device__ __forceinline__ WarpCoords warp_coords() {
  WarpCoords c;
  c.lane = threadIdx.x & 31;
  c.warp = threadIdx.x >> 5;
  c.global_warp = blockIdx.x * kWarps + c.warp;
  c.num_warps = gridDim.x * kWarps;
  return c;
}

// ---- phases ---------------------------------------------------------------------------------

// Phase kNormQkvRope: t = rmsnorm(x); qkv = W t + b; RoPE on q and k; k, v appended to the cache.
// Unit of work = one RoPE pair of rows (i, i + 32) of one 64-row head, so each warp finishes its
// rotation without exchanging data.
__device__ void phase_norm_qkv_rope(const MegakernelArgs& a, const LayerArgs& L, bool from_embed,
                                    int token, const Smem& s) {
  const float* x = from_embed ? nullptr : a.x;
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  rmsnorm_to_smem(s.act, false, x, emb, L.attn_norm, a.hidden, a.rms_norm_eps, s);
  const WarpCoords w = warp_coords();
  const int half = kHeadDim / 2;
  const int q_heads = a.num_heads, kv_heads = a.num_kv_heads;
  const int units = (q_heads + 2 * kv_heads) * half;
  const float* rope = a.rope_table + size_t(a.pos) * kHeadDim;
  const int slot = L.sliding ? a.pos % L.kv_capacity : a.pos;
  for (int u = w.global_warp; u < units; u += w.num_warps) {
    const int head = u / half, i = u % half;
    const int row_a = head * kHeadDim + i, row_b = row_a + half;
    float va, vb;
    warp_dot2_bf16(L.qkv_weight + size_t(row_a) * a.hidden, L.qkv_weight + size_t(row_b) * a.hidden,
                   s.act, a.hidden, &va, &vb);
    if (w.lane != 0) continue;
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

// Phase kAttention: CTA b handles KV head b / max_splits and split b % max_splits of the key
// range. Inside, each warp takes tiles of 32 keys (one key per lane for the scores, two
// dimensions per lane for the values) with an online softmax per query head. Warp states merge
// in shared memory into one split state in global memory; the last split CTA of a KV head
// (counter) merges the splits and adds the sink exactly once. The current position's k and v
// come from the qkv buffer, never from the cache.
__device__ void phase_attention(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int group = a.num_heads / a.num_kv_heads;
  const int n_keys = L.sliding ? min(a.pos + 1, a.sliding_window) : a.pos + 1;
  const int first_pos = a.pos + 1 - n_keys;
  int n_splits = (n_keys + 255) / 256;
  n_splits = n_splits < 1 ? 1 : (n_splits > a.max_splits ? a.max_splits : n_splits);
  const int g = blockIdx.x / a.max_splits, split = blockIdx.x % a.max_splits;
  if (g >= a.num_kv_heads || split >= n_splits) return;
  const WarpCoords w = warp_coords();
  const int q_dim = a.num_heads * kHeadDim, kv_dim = a.num_kv_heads * kHeadDim;

  float* q_s = s.act;                                  // [group][64]
  float* warp_state = s.act + kMaxGroup * kHeadDim;    // [kWarps][group][66]
  for (int idx = threadIdx.x; idx < group * kHeadDim; idx += kThreads) {
    q_s[idx] = bf16_bits_to_float(ld_act(a.qkv + g * group * kHeadDim + idx));
  }
  __syncthreads();

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
  float m[kMaxGroup], l[kMaxGroup], acc[kMaxGroup][2];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
    acc[h][0] = acc[h][1] = 0.0f;
  }
  for (int tile = k_begin + w.warp * 32; tile < k_end; tile += kWarps * 32) {
    const int j = tile + w.lane;
    const bool valid = j < k_end;
    float sc[kMaxGroup];
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) sc[h] = 0.0f;
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
        for (int h = 0; h < kMaxGroup; ++h) {
          if (h < group) sc[h] += dot8(kv[c], q_s + h * kHeadDim + 8 * c);
        }
      }
    }
    float p[kMaxGroup];
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      if (h >= group) continue;
      const float logit = valid ? sc[h] * kAttnScale : -INFINITY;
      const float m_new = fmaxf(m[h], warp_max(logit));
      const float corr = __expf(m[h] - m_new);  // m[h] = -inf the first time: corr = 0
      p[h] = valid ? __expf(logit - m_new) : 0.0f;
      l[h] = l[h] * corr + warp_sum(p[h]);
      acc[h][0] *= corr;
      acc[h][1] *= corr;
      m[h] = m_new;
    }
    dev::copy_async_wait_all();
    dev::sync_warp();
    const int n_in_tile = min(32, k_end - tile);
    for (int jj = 0; jj < n_in_tile; ++jj) {
      const uint32_t vv = v_words[(jj * 8 + ((w.lane >> 2) ^ (jj & 7))) * 4 + (w.lane & 3)];
      const float v0 = bf_lo(vv), v1 = bf_hi(vv);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        if (h >= group) continue;
        const float ph = dev::shfl(p[h], jj);
        acc[h][0] = fmaf(ph, v0, acc[h][0]);
        acc[h][1] = fmaf(ph, v1, acc[h][1]);
      }
    }
    dev::sync_warp();  // the next tile's copies overwrite v_tile
  }
  // Warp states -> shared memory.
  constexpr int kState = kHeadDim + 2;
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h >= group) continue;
    float* st = warp_state + (w.warp * kMaxGroup + h) * kState;
    st[2 * w.lane] = acc[h][0];
    st[2 * w.lane + 1] = acc[h][1];
    if (w.lane == 0) {
      st[kHeadDim] = m[h];
      st[kHeadDim + 1] = l[h];
    }
  }
  __syncthreads();
  // Merge the warps of this CTA: one thread per (head, dim).
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
    partial[h * kState + d] = aa;
    if (d == 0) {
      partial[h * kState + kHeadDim] = mm;
      partial[h * kState + kHeadDim + 1] = ll;
    }
  }
  // Publish this split; the last split CTA of KV head g merges (counter g).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint32_t prev = atomicAdd(a.counters + g, 1u);
    const int last = prev == uint32_t(n_splits - 1);
    if (last) a.counters[g] = 0;  // every split of this head has arrived: reset for the next use
    *s.flag = last;
    __threadfence();
  }
  __syncthreads();
  if (!*s.flag) return;
  const float* parts = a.attn_partial + size_t(g) * a.max_splits * kMaxGroup * kState;
  for (int idx = threadIdx.x; idx < group * kHeadDim; idx += kThreads) {
    const int h = idx / kHeadDim, d = idx % kHeadDim;
    const float sink = bf16_bits_to_float(L.sinks[g * group + h]);
    float mm = sink;
    for (int sp = 0; sp < n_splits; ++sp) mm = fmaxf(mm, dev::load_l2(parts + (sp * kMaxGroup + h) * kState + kHeadDim));
    float ll = __expf(sink - mm), aa = 0.0f;
    for (int sp = 0; sp < n_splits; ++sp) {
      const float* st = parts + (sp * kMaxGroup + h) * kState;
      const float f = __expf(dev::load_l2(st + kHeadDim) - mm);
      ll += dev::load_l2(st + kHeadDim + 1) * f;
      aa += dev::load_l2(st + d) * f;
    }
    a.attn_out[(g * group + h) * kHeadDim + d] = float_to_bf16_bits(aa / ll);
  }
}

// Phase kOutProj: x = x_in + W_o attn + b_o, one warp per output row.
__device__ void phase_out_proj(const MegakernelArgs& a, const LayerArgs& L, bool from_embed,
                               int token, const Smem& s) {
  const int q_dim = a.num_heads * kHeadDim;
  for (int k = threadIdx.x; k < q_dim; k += kThreads) {
    s.act[k] = bf16_bits_to_float(ld_act(a.attn_out + k));
  }
  __syncthreads();
  const WarpCoords w = warp_coords();
  const uint16_t* emb = a.embed + size_t(token) * a.hidden;
  for (int row = w.global_warp; row < a.hidden; row += w.num_warps) {
    const float o = warp_dot_bf16(L.out_weight + size_t(row) * q_dim, s.act, q_dim);
    if (w.lane == 0) {
      const float x_in = from_embed ? bf16_bits_to_float(emb[row]) : ld_act(a.x + row);
      a.x[row] = x_in + (o + bf16_bits_to_float(L.out_bias[row]));
    }
  }
}

// Phase kRouter: router logits of rmsnorm(x), one warp per expert row.
__device__ void phase_router(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const WarpCoords w = warp_coords();
  if (blockIdx.x * kWarps >= a.num_experts) return;  // CTAs without rows skip the norm too
  rmsnorm_to_smem(s.act, false, a.x, nullptr, L.mlp_norm, a.hidden, a.rms_norm_eps, s);
  for (int e = w.global_warp; e < a.num_experts; e += w.num_warps) {
    const float r = warp_dot_bf16(L.router_weight + size_t(e) * a.hidden, s.act, a.hidden);
    if (w.lane == 0) a.router_logits[e] = r + bf16_bits_to_float(L.router_bias[e]);
  }
}

// Top-k of the router logits (lowest index wins ties) and a softmax over the chosen k,
// computed by every CTA for itself (cheap, saves a barrier). Block scope, syncs on exit.
__device__ void select_experts(const MegakernelArgs& a, const Smem& s) {
  // All logits to shared memory in one parallel step (a serial loop of L2 loads by one thread
  // cost tens of microseconds per layer).
  float* logits_s = s.act;
  for (int e = threadIdx.x; e < a.num_experts; e += kThreads) logits_s[e] = ld_act(a.router_logits + e);
  __syncthreads();
  if (threadIdx.x == 0) {
    float logits[kMaxTopK];
    for (int r = 0; r < a.experts_per_token; ++r) {
      int best = -1;
      float best_v = -INFINITY;
      for (int e = 0; e < a.num_experts; ++e) {
        bool taken = false;
        for (int q = 0; q < r; ++q) taken |= (s.sel[q] == e);
        const float v = logits_s[e];
        if (!taken && (best < 0 || v > best_v)) {
          best = e;
          best_v = v;
        }
      }
      s.sel[r] = best;
      logits[r] = best_v;
    }
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
  __syncthreads();
}

// Phase kExpertsUp: every CTA selects the experts, recomputes t = rmsnorm(x) (FP8-quantized in
// that mode), then each warp computes gate and up rows (2m, 2m+1) of one channel of one expert
// and applies the clamped SwiGLU.
__device__ void phase_experts_up(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  select_experts(a, s);
  rmsnorm_to_smem(s.act, true, a.x, nullptr, L.mlp_norm, a.hidden, a.rms_norm_eps, s);
  if (a.experts_fp8) quantize_fp8_padded(s.act, a.hidden);
  const WarpCoords w = warp_coords();
  const int inter = a.intermediate, mlp1 = 2 * inter;
  const size_t row_bytes = size_t(a.hidden) / 2, row_scales = size_t(a.hidden) / kMxBlock;
  const int units = a.experts_per_token * inter;
  // Two (gate, up) row pairs per warp iteration: four rows' loads in flight.
  for (int u0 = w.global_warp; u0 < units; u0 += 2 * w.num_warps) {
    const int num_units = u0 + w.num_warps < units ? 2 : 1;
    const uint8_t* blocks[4];
    const uint8_t* scales[4];
    size_t rows[4];
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int u = q < num_units ? u0 + q * w.num_warps : u0;
      const int r = u / inter, m = u % inter;
      rows[2 * q] = size_t(s.sel[r]) * mlp1 + 2 * m;
      rows[2 * q + 1] = rows[2 * q] + 1;
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      blocks[q] = L.mlp1_blocks + rows[q] * row_bytes;
      scales[q] = L.mlp1_scales + rows[q] * row_scales;
    }
    float dots[4];
    warp_dot4_mxfp4(blocks, scales, 2 * num_units, s.act, a.hidden, s.lut, dots);
    if (w.lane == 0) {
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        if (q >= num_units) break;
        const int u = u0 + q * w.num_warps;
        const int r = u / inter, m = u % inter;
        const float gate = dots[2 * q] + bf16_bits_to_float(L.mlp1_bias[rows[2 * q]]);
        const float up = dots[2 * q + 1] + bf16_bits_to_float(L.mlp1_bias[rows[2 * q + 1]]);
        a.swiglu_out[r * inter + m] = float_to_bf16_bits(swiglu(gate, up, a.swiglu_limit));
      }
    }
  }
}

// Phase kExpertsDown: one warp per hidden row n: y_e = W2_e[n] a_e + b2_e[n] for the chosen
// experts, x[n] += sum_e w_e y_e (in rank order).
__device__ void phase_experts_down(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int inter = a.intermediate;
  const int per_expert = (inter / kMxBlock) * kMxPad;
  for (int idx = threadIdx.x; idx < a.experts_per_token * inter; idx += kThreads) {
    const int r = idx / inter, k = idx % inter;
    s.act[r * per_expert + padded(k)] = bf16_bits_to_float(ld_act(a.swiglu_out + idx));
  }
  __syncthreads();
  const WarpCoords w = warp_coords();
  const size_t row_bytes = size_t(inter) / 2, row_scales = size_t(inter) / kMxBlock;
  const int nblk = inter / kMxBlock;
  const int k = a.experts_per_token;
  for (int n = w.global_warp; n < a.hidden; n += w.num_warps) {
    // The k experts' rows are independent: issue all their loads before any arithmetic.
    float acc[kMaxTopK];
#pragma unroll
    for (int r = 0; r < kMaxTopK; ++r) acc[r] = 0.0f;
    for (int c = w.lane; c < nblk; c += 32) {
      uint4 blk[kMaxTopK];
      float sc[kMaxTopK];
#pragma unroll
      for (int r = 0; r < kMaxTopK; ++r) {
        if (r < k) {
          const size_t row = size_t(s.sel[r]) * a.hidden + n;
          blk[r] = ld_weight(reinterpret_cast<const uint4*>(L.mlp2_blocks + row * row_bytes) + c);
          sc[r] = e8m0(dev::load_evict_first(L.mlp2_scales + row * row_scales + c));
        }
      }
#pragma unroll
      for (int r = 0; r < kMaxTopK; ++r) {
        if (r < k) acc[r] = fmaf(mx_block_dot(blk[r], s.act + r * per_expert + c * kMxPad, s.lut), sc[r], acc[r]);
      }
    }
    float moe = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxTopK; ++r) {
      if (r < k) {
        const size_t row = size_t(s.sel[r]) * a.hidden + n;
        const float y = warp_sum(acc[r]) + bf16_bits_to_float(L.mlp2_bias[row]);
        moe = fmaf(s.sel_w[r], y, moe);
      }
    }
    if (w.lane == 0) a.x[n] = ld_act(a.x + n) + moe;
  }
}

// Final norm and LM head with a fused argmax: each warp keeps its best (value, lowest index)
// over its rows, each CTA its best over its warps; the last CTA to finish (counter) reduces the
// CTAs and writes the token. Logits are stored only when a.logits is set.
__device__ void phase_lm_head(const MegakernelArgs& a, const Smem& s) {
  rmsnorm_to_smem(s.act, false, a.x, nullptr, a.final_norm, a.hidden, a.rms_norm_eps, s);
  const WarpCoords w = warp_coords();
  float best_v = -INFINITY;
  int best_i = -1;
  for (int row = w.global_warp; row < a.vocab_size; row += w.num_warps) {
    const float v = warp_dot_bf16(a.lm_head + size_t(row) * a.hidden, s.act, a.hidden);
    if (a.logits && w.lane == 0) a.logits[row] = v;
    if (v > best_v) {  // rows ascend per warp, so '>' keeps the lowest index on ties
      best_v = v;
      best_i = row;
    }
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
    __threadfence();
    const uint32_t prev = atomicAdd(a.counters + a.num_kv_heads, 1u);
    if (prev == gridDim.x - 1) {
      __threadfence();
      a.counters[a.num_kv_heads] = 0;
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
    }
  }
}

__global__ void __launch_bounds__(kThreads, 1) megakernel_kernel(MegakernelArgs a) {
  extern __shared__ float4 smem_raw[];
  const Smem s = carve_smem(reinterpret_cast<float*>(smem_raw), a);
  if (threadIdx.x < 16) {
    constexpr float kE2m1[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    s.lut[threadIdx.x] = kE2m1[threadIdx.x];
  }
  if (threadIdx.x < kMaxTopK) {  // valid expert ids even if a profiling run skips experts_up
    s.sel[threadIdx.x] = 0;
    s.sel_w[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  dev::GridBarrier<> barrier(a.barrier, gridDim.x, a.barrier_cfg);
  const int token = *a.token_in;
  if (token < 0 || token >= a.vocab_size) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      a.control->error = uint32_t(KernelError::kBadToken);
      a.control->value = token;
    }
    return;  // every CTA returns: no barrier is left waiting
  }
  for (int layer = a.start_layer; layer < a.num_layers; ++layer) {
    const LayerArgs& L = a.layers[layer];
    const bool from_embed = layer == 0 && a.start_layer == 0;
    for (int p = 0; p < int(kNumPhases); ++p) {
      switch (static_cast<Phase>((a.phase_mask >> p) & 1u ? p : int(kNumPhases))) {
        case Phase::kNormQkvRope: phase_norm_qkv_rope(a, L, from_embed, token, s); break;
        case Phase::kAttention: phase_attention(a, L, s); break;
        case Phase::kOutProj: phase_out_proj(a, L, from_embed, token, s); break;
        case Phase::kRouter: phase_router(a, L, s); break;
        case Phase::kExpertsUp: phase_experts_up(a, L, s); break;
        case Phase::kExpertsDown: phase_experts_down(a, L, s); break;
        default: break;
      }
      barrier.sync(uint32_t(layer * int(kNumPhases) + p));
      if (layer == a.stop_layer && p == a.stop_phase) return;
    }
  }
  if ((a.phase_mask >> kNumPhases) & 1u) phase_lm_head(a, s);
}

}  // namespace

size_t megakernel_smem_bytes(const MegakernelArgs& a) {
  return sizeof(float) * (act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token,
                                     a.intermediate) +
                          4 * kWarps + 16 + 2 * kMaxTopK + 4);
}

void check_megakernel_shapes(const MegakernelArgs& a) {
  auto need = [](bool ok, const char* what) {
    if (!ok) throw Error(fmt::format("the megakernel does not support this model: {}", what));
  };
  need(a.head_dim == kHeadDim, "head_dim must be 64");
  need(a.num_heads % a.num_kv_heads == 0 && a.num_heads / a.num_kv_heads <= kMaxGroup,
       "at most 8 query heads per KV head");
  need(a.experts_per_token <= kMaxTopK, "at most 4 experts per token");
  need(a.num_experts <= kMaxExperts, "at most 256 experts");
  need(a.hidden % kMxBlock == 0 && a.intermediate % kMxBlock == 0,
       "hidden and intermediate must be multiples of 32");
  need((a.num_heads * kHeadDim) % 8 == 0, "q width must be a multiple of 8");
}

int megakernel_grid_size() {
  const void* kernel = reinterpret_cast<const void*>(megakernel_kernel);
  const int per_sm = gpu::max_active_blocks_per_sm(kernel, kThreads, 0);
  return gpu::multiprocessor_count() * (per_sm >= 1 ? 1 : 0);
}

void launch_megakernel(const MegakernelArgs& a, int grid, void* stream) {
  const void* kernel = reinterpret_cast<const void*>(megakernel_kernel);
  const size_t smem = megakernel_smem_bytes(a);
  gpu::set_max_dynamic_smem(kernel, smem);
  const int per_sm = gpu::max_active_blocks_per_sm(kernel, kThreads, smem);
  const int sms = gpu::multiprocessor_count();
  if (per_sm < 1 || grid > sms * per_sm) {
    throw Error(fmt::format("megakernel: {} CTAs cannot all be resident ({} SMs x {} per SM with "
                            "{} B of shared memory)", grid, sms, per_sm, smem),
                "the persistent kernel needs one CTA per SM; is another process using the GPU?");
  }
  if (grid < a.num_kv_heads * a.max_splits) {
    throw Error(fmt::format("megakernel: grid {} < {} KV heads x {} splits", grid, a.num_kv_heads,
                            a.max_splits));
  }
  MegakernelArgs args = a;
  void* params[] = {&args};
  gpu::launch_cooperative(kernel, grid, kThreads, params, smem, stream);
}

int megakernel_threads() { return kThreads; }

}  // namespace gptoss::mk
