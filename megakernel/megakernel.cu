// megakernel.cu — the persistent decode kernel: one cooperative launch runs a whole decode step
// (all layers, the final norm and the LM head with a fused argmax) for one token at batch 1.
// Grid: one CTA of kThreads per SM, all co-resident (checked with the occupancy API at launch).
// Per layer the six phases of megakernel/phases.h run back to back with a grid barrier after
// each (device_ops/grid_barrier.cuh; docs/ARCHITECTURE.md gives the reason for every barrier).
// Work inside a phase is split so that every SM streams about the same number of weight bytes
// (contiguous row ranges per CTA for the BF16 projections, 16-row MXFP4 tiles on tensor cores for
// the experts); CTAs recompute cheap things (RMSNorm statistics, the router's top-k) instead of
// synchronising for them. With MegakernelArgs::phase_times set, CTA 0 records a timeline
// (`gptoss bench tpot --phase-times`).
#include "megakernel/megakernel.h"

#include <climits>

#include "device_ops/gemv_mxfp4.cuh"
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
static_assert(kMaxAttentionSplits <= kWarps, "the split merge reuses the per-warp state region");
constexpr int kHeadDim = 64;        // RoPE tables and attention tiles assume it (checked at launch)
constexpr int kMaxGroup = 8;        // query heads per KV head
constexpr int kHeadSets = 2;        // attention: warps sharing a key tile, each with a share of the heads
constexpr int kHeadsPerWarp = kMaxGroup / kHeadSets;
constexpr int kMaxTopK = 4;
constexpr int kMaxExperts = 256;
constexpr int kMxBlock = 32;        // MXFP4 / FP8 block length
// MXFP4 expert GEMVs (device_ops/gemv_mxfp4.cuh, tensor cores): 16-byte loads in flight per lane
// per row of a 16-row tile, and the K splits of experts_down (warps of a CTA per expert).
// (H100, 20b at 1K: unroll 2 -> 3.01 ms, 4 -> 3.12 ms (spills), 1 with software pipelining ->
// 3.18 ms, 2 pipelined -> 3.37 ms; see docs/PERF.md.)
constexpr int kMxUnroll = 2;
constexpr int kDownSplits = kWarps / kMaxTopK;
constexpr int kUpSplits = 4;  // experts_up: warps per 16-row tile (K quarters)
constexpr int kUpTilesPerRound = kWarps / kUpSplits;
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

// Shared memory of one CTA (dynamic): a big activation region plus small scratch.
struct Smem {
  float* act;        // activation region (see act_floats())
  double* dscratch;  // [kWarps]
  float* scratch;    // [kWarps * 2]
  int* sel;          // [kMaxTopK] chosen experts
  float* sel_w;      // [kMaxTopK]
  int* flag;         // [1]
  int layer;         // the layer being run (profiling marks)
};

__host__ __device__ constexpr int align16(int bytes) { return (bytes + 15) & ~15; }

// Expert phases' shared memory, in bytes from the start of the activation region, for k-wide
// inputs of `n` vectors: the inputs as floats, then one 16-byte aligned staging area per vector
// (the GEMV's fragment order, bf16 or fp8), then the fp8 codes and scales, then the split-K
// partial sums of experts_down.
struct ExpertSmem {
  int staged, staged_stride, codes, scales, red, total;
};
__host__ __device__ constexpr ExpertSmem expert_smem(int k, int n) {
  ExpertSmem e{};
  const int stride_bf16 = align16(dev::staged_bf16_bytes(k)), stride_fp8 = align16(dev::staged_fp8_bytes(k));
  e.staged = align16(n * k * int(sizeof(float)));
  e.staged_stride = stride_bf16 > stride_fp8 ? stride_bf16 : stride_fp8;
  e.codes = e.staged + n * e.staged_stride;
  e.scales = e.codes + align16(n * k);
  e.red = e.scales + align16(n * (k / kMxBlock));
  e.total = e.red + kWarps * dev::kMxfp4TileRows * int(sizeof(float));
  return e;
}

__host__ __device__ inline int act_floats(int hidden, int q_dim, int topk, int inter) {
  int n = hidden > q_dim ? hidden : q_dim;
  const int up = expert_smem(hidden, 1).total / int(sizeof(float));
  const int down = expert_smem(inter, topk).total / int(sizeof(float));
  n = n > up ? n : up;
  n = n > down ? n : down;
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
  s.sel = reinterpret_cast<int*>(p);
  p += kMaxTopK;
  s.sel_w = p;
  p += kMaxTopK;
  s.flag = reinterpret_cast<int*>(p);
  return s;
}

// RMSNorm of the residual into shared memory: out[k] = bf16((x_k * r) * gain_k) as floats, with
// r = float(1 / sqrt(mean(x^2) + eps)) and the mean accumulated in FP64 as the CPU reference
// does. `x_f32` is the residual (or null with `x_bf16` the embedding row at layer 0). One pass:
// each thread loads 8-value chunks with 16-byte loads (x and its gain issued together), keeps x
// in `out` until the statistics are known. n % 8 == 0. Block scope; one __syncthreads() on exit.
__device__ void rmsnorm_to_smem(float* out, const float* x_f32, const uint16_t* x_bf16,
                                const uint16_t* gain, int n, float eps, const Smem& s) {
  const int chunks = n / 8;
  double sum = 0;
  uint4 first_gain = make_uint4(0, 0, 0, 0);
  for (int c = threadIdx.x; c < chunks; c += kThreads) {
    float v[8];
    if (c == int(threadIdx.x)) first_gain = dev::load_stream_16B(gain + 8 * c);
    if (x_f32) {
      const float4 lo = dev::load_l2(reinterpret_cast<const float4*>(x_f32) + 2 * c);
      const float4 hi = dev::load_l2(reinterpret_cast<const float4*>(x_f32) + 2 * c + 1);
      v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
    } else {
      const uint4 b = dev::load_stream_16B(x_bf16 + 8 * c);
      const uint32_t words[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) v[2 * i] = bf_lo(words[i]), v[2 * i + 1] = bf_hi(words[i]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sum += double(v[i]) * double(v[i]);
    *reinterpret_cast<float4*>(out + 8 * c) = make_float4(v[0], v[1], v[2], v[3]);
    *reinterpret_cast<float4*>(out + 8 * c + 4) = make_float4(v[4], v[5], v[6], v[7]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += dev::shfl_xor(sum, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) s.dscratch[warp] = sum;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < kWarps; ++w) total += s.dscratch[w];
  const float r = float(1.0 / sqrt(total / n + double(eps)));
  for (int c = threadIdx.x; c < chunks; c += kThreads) {
    const uint4 g = c == int(threadIdx.x) ? first_gain : dev::load_stream_16B(gain + 8 * c);
    const uint32_t words[4] = {g.x, g.y, g.z, g.w};
    float* o = out + 8 * c;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      o[2 * i] = round_bf16((o[2 * i] * r) * bf_lo(words[i]));
      o[2 * i + 1] = round_bf16((o[2 * i + 1] * r) * bf_hi(words[i]));
    }
  }
  __syncthreads();
}

// n BF16 activations written earlier in this launch (read at L2) into shared memory as floats,
// 16-byte loads, up to kLoadBatch per thread in flight. n % 8 == 0, both 16-byte aligned.
// Block scope; no synchronization (callers __syncthreads() before reading `out`).
constexpr int kLoadBatch = 4;
__device__ void bf16_act_to_smem(float* out, const uint16_t* src, int n) {
  const uint4* s4 = reinterpret_cast<const uint4*>(src);
  const int chunks = n / 8;
  for (int c0 = threadIdx.x; c0 < chunks; c0 += kThreads * kLoadBatch) {
    uint4 v[kLoadBatch];
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int c = c0 + u * kThreads;
      if (c < chunks) v[u] = dev::load_l2(s4 + c);
    }
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int c = c0 + u * kThreads;
      if (c >= chunks) break;
      float4* o = reinterpret_cast<float4*>(out + 8 * c);
      o[0] = make_float4(bf_lo(v[u].x), bf_hi(v[u].x), bf_lo(v[u].y), bf_hi(v[u].y));
      o[1] = make_float4(bf_lo(v[u].z), bf_hi(v[u].z), bf_lo(v[u].w), bf_hi(v[u].w));
    }
  }
}

// Dot products of BF16 weight rows with a plain-layout FP32 vector in shared memory; the
// result is valid in every lane.
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

__device__ __forceinline__ float warp_dot_bf16(const uint16_t* row, const float* t, int k) {
  const int lane = threadIdx.x & 31;
  const uint4* w = reinterpret_cast<const uint4*>(row);
  const int chunks = k / 8;
  float acc = 0.0f;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) acc += dot8(ld_weight(w + c), t + 8 * c);
  return warp_sum(acc);
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

// Profiling: CTA 0 thread 0 records the global timer at mark m of the current layer.
__device__ __forceinline__ void mark(const MegakernelArgs& a, const Smem& s, Mark m) {
  if (a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0) {
    a.phase_times[2 + a.num_layers * int(kNumPhases) + s.layer * kNumMarks + int(m)] =
        dev::global_timer_ns();
  }
}

// Profiling: the latest time any warp of CTA 0 (or of any CTA) reached mark m (lane 0 of each
// warp; the slot is cleared by reset_mark_max, for CTA 0 at the start of the phase, ordered by a
// later __syncthreads(); for any CTA in the phase before, ordered by the grid barrier).
__device__ __forceinline__ void mark_max(const MegakernelArgs& a, const Smem& s, Mark m,
                                         bool any_cta = false) {
  if (a.phase_times != nullptr && (any_cta || blockIdx.x == 0) && (threadIdx.x & 31) == 0) {
    atomicMax(reinterpret_cast<unsigned long long*>(a.phase_times + 2 + a.num_layers * int(kNumPhases) +
                                                    s.layer * kNumMarks + int(m)),
              static_cast<unsigned long long>(dev::global_timer_ns()));
  }
}
__device__ __forceinline__ void reset_mark_max(const MegakernelArgs& a, const Smem& s, Mark m) {
  if (a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0) {
    a.phase_times[2 + a.num_layers * int(kNumPhases) + s.layer * kNumMarks + int(m)] = 0;
  }
}

// ---- phases ---------------------------------------------------------------------------------

// Block-level GEMV for the BF16 phases: a CTA owns a contiguous range of rows (so every SM
// streams the same number of bytes) and its warps split as kRowGroups x kKSplit (rows x K
// quarters). Rows i in [0, n_rows): row(i) gives the row's k BF16 weights (16-byte aligned);
// t = k floats in shared memory. On return (after a __syncthreads()) red[i * kKSplit + q] holds
// the partial sum of K quarter q: callers add the quarters in order. red: n_rows * kKSplit floats
// of shared memory.
constexpr int kKSplit = 4;
constexpr int kRowGroups = kWarps / kKSplit;
constexpr int kGemvRows = 4;  // rows per warp iteration (their loads are in flight together)

template <class RowFn>
__device__ void cta_gemv_bf16(RowFn row, int n_rows, const float* t, int k, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int q = warp % kKSplit, group = warp / kKSplit;
  const int chunks = k / 8;
  const int c_begin = chunks * q / kKSplit, c_end = chunks * (q + 1) / kKSplit;
  for (int i0 = group; i0 < n_rows; i0 += kGemvRows * kRowGroups) {
    const uint4* w[kGemvRows];
    float acc[kGemvRows];
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const int i = i0 + r * kRowGroups;
      w[r] = i < n_rows ? reinterpret_cast<const uint4*>(row(i)) : nullptr;
      acc[r] = 0.0f;
    }
#pragma unroll 2
    for (int c = c_begin + lane; c < c_end; c += 32) {
      uint4 v[kGemvRows];
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) v[r] = w[r] ? ld_weight(w[r] + c) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) acc[r] += dot8(v[r], t + 8 * c);
    }
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const float sum = warp_sum(acc[r]);
      if (lane == 0 && w[r]) red[(i0 + r * kRowGroups) * kKSplit + q] = sum;
    }
  }
  __syncthreads();
}

__device__ __forceinline__ float sum_splits(const float* red, int i) {
  float v = 0.0f;
#pragma unroll
  for (int q = 0; q < kKSplit; ++q) v += red[i * kKSplit + q];
  return v;
}

// Phase kNormQkvRope: t = rmsnorm(x); qkv = W t + b; RoPE on q and k; k, v appended to the cache.
// Unit of work = one RoPE pair of rows (i, i + 32) of one 64-row head; CTA b owns a contiguous
// range of pairs (cta_gemv_bf16) and finishes their rotations itself.
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
  cta_gemv_bf16([&](int i) { return L.qkv_weight + size_t(row_of(i)) * a.hidden; },
                2 * (u_end - u_begin), s.act, a.hidden, red);
  mark(a, s, Mark::kQkvGemv);
  const float* rope = a.rope_table + size_t(a.pos) * kHeadDim;
  const int slot = L.sliding ? a.pos % L.kv_capacity : a.pos;
  for (int j = threadIdx.x; j < u_end - u_begin; j += kThreads) {
    const int u = u_begin + j, head = u / half, i = u % half;
    const int row_a = head * kHeadDim + i, row_b = row_a + half;
    float va = sum_splits(red, 2 * j) + bf16_bits_to_float(L.qkv_bias[row_a]);
    float vb = sum_splits(red, 2 * j + 1) + bf16_bits_to_float(L.qkv_bias[row_b]);
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
// range. Inside, warps pair up on tiles of 32 keys (one key per lane for the scores, two
// dimensions per lane for the values), each warp of a pair with half of the group's query
// heads, online softmax per head. Warp states merge in shared memory; with one split the CTA
// finishes the heads itself, otherwise the split state goes to global memory and the last split
// CTA of a KV head (counter) merges the splits; the sink counts exactly once either way. The
// current position's k and v come from the qkv buffer, never from the cache.
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
  // Warps pair up on a key tile: warp w takes query heads [hs * hpw, hs * hpw + hpw) of the group
  // (hs = w % 2), so a tile's scores, softmax and PV chain is half as long per warp.
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
  // Publish this split; the last split CTA of KV head g merges (counter g). The CTA barrier
  // orders every thread's partial stores before thread 0's fence, which makes them visible at
  // GPU scope before the counter moves (the cooperative-groups grid-sync pattern). One fence per
  // CTA: a fence in all 512 threads of up to 128 CTAs cost ~40 us per layer at 32K keys.
  __syncthreads();
  mark(a, s, Mark::kAttnSync);
  if (threadIdx.x == 0) {
    __threadfence();
    const uint32_t prev = atomicAdd(a.counters + g, 1u);
    const int last = prev == uint32_t(n_splits - 1);
    if (last) a.counters[g] = 0;  // every split of this head has arrived: reset for the next use
    *s.flag = last;
    __threadfence();
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

// Phase kRouter: router logits of rmsnorm(x); CTA b owns a contiguous range of expert rows
// (cta_gemv_bf16; CTAs without rows skip the norm too).
__device__ void phase_router(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int e_begin = int(int64_t(a.num_experts) * blockIdx.x / gridDim.x);
  const int e_end = int(int64_t(a.num_experts) * (blockIdx.x + 1) / gridDim.x);
  if (e_begin == e_end) return;
  rmsnorm_to_smem(s.act, a.x, nullptr, L.mlp_norm, a.hidden, a.rms_norm_eps, s);
  float* red = s.act + align16(a.hidden * int(sizeof(float))) / int(sizeof(float));
  cta_gemv_bf16([&](int i) { return L.router_weight + size_t(e_begin + i) * a.hidden; },
                e_end - e_begin, s.act, a.hidden, red);
  for (int i = threadIdx.x; i < e_end - e_begin; i += kThreads) {
    a.router_logits[e_begin + i] = sum_splits(red, i) + bf16_bits_to_float(L.router_bias[e_begin + i]);
  }
}

// Top-k of the router logits (lowest index wins ties; a NaN logit ranks as -inf) and a softmax
// over the chosen k, computed by every CTA for itself (cheap, saves a barrier): warp 0 holds
// the logits in registers (expert e in lane e % 32) and runs k rounds of a warp argmax.
// Block scope, syncs on exit.
__device__ void select_experts(const MegakernelArgs& a, const Smem& s) {
  if (threadIdx.x < 32) {
    constexpr int kPerLane = kMaxExperts / 32;
    const int lane = threadIdx.x;
    float v[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      const float x = e < a.num_experts ? ld_act(a.router_logits + e) : -INFINITY;
      v[i] = x == x ? x : -INFINITY;
    }
    uint32_t taken = 0;  // bit i: expert lane + 32 i is chosen
    float* logits = s.scratch;  // [experts_per_token], lane 0's
    for (int r = 0; r < a.experts_per_token; ++r) {
      float bv = -INFINITY;
      int bi = INT_MAX;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int e = lane + 32 * i;
        if (e < a.num_experts && !((taken >> i) & 1u) && (v[i] > bv || bi == INT_MAX)) {
          bv = v[i];
          bi = e;
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = dev::shfl_xor(bv, o);
        const int oi = dev::shfl_xor(bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
          bv = ov;
          bi = oi;
        }
      }
      if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
      if (lane == 0) {
        s.sel[r] = bi;
        logits[r] = bv;
      }
    }
    if (lane == 0) {
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
  }
  __syncthreads();
}

// Stages n k-wide input vectors (floats in shared memory at s.act, bf16-representable) for the
// MXFP4 GEMV: with fp8 each 32-block is quantized first (E4M3 codes + E8M0 scale, the encoding
// of docs/ARCHITECTURE.md, bit-exact with the CPU reference; only the mlp1 input is quantized in
// `--experts fp8`). Block scope; syncs on exit.
__device__ void stage_expert_inputs(const Smem& s, bool fp8, int k, int n) {
  const ExpertSmem e = expert_smem(k, n);
  uint8_t* base = reinterpret_cast<uint8_t*>(s.act);
  if (fp8) {
    for (int v = 0; v < n; ++v) {
      dev::block_quantize_fp8(base + e.codes + v * k, base + e.scales + v * (k / kMxBlock),
                              s.act + v * k, k);
    }
    __syncthreads();
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_fp8(base + e.staged + v * e.staged_stride, base + e.codes + v * k,
                                       base + e.scales + v * (k / kMxBlock), k);
    }
  } else {
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_bf16(base + e.staged + v * e.staged_stride, s.act + v * k, k);
    }
  }
}

// One 16-row tile of an MXFP4 matrix against staged activations, blocks [kb_begin, kb_end):
// acc[0] = row row0 + lane/4, acc[1] = row row0 + lane/4 + 8, in every lane of a quad.
__device__ __forceinline__ void expert_tile(float (&acc)[2], bool fp8, const dev::Mxfp4Matrix& w,
                                            const uint8_t* staged, int row0, int kb_begin,
                                            int kb_end) {
  if (fp8) {
    dev::warp_gemv_mxfp4_fp8<kMxUnroll>(acc, w, staged, row0, kb_begin, kb_end);
  } else {
    dev::warp_gemv_mxfp4_bf16<kMxUnroll>(acc, w, staged, row0, kb_begin, kb_end);
  }
}

// Phase kExpertsUp: every CTA selects the experts and recomputes t = rmsnorm(x) (staged for the
// tensor-core GEMV, FP8-quantized in that mode); then it computes 16-row tiles of the chosen
// experts' mlp1 (8 interleaved gate/up pairs) and applies the clamped SwiGLU.
__device__ void phase_experts_up(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  select_experts(a, s);
  mark(a, s, Mark::kUpSelect);
  rmsnorm_to_smem(s.act, a.x, nullptr, L.mlp_norm, a.hidden, a.rms_norm_eps, s);
  mark(a, s, Mark::kUpNorm);
  stage_expert_inputs(s, a.experts_fp8, a.hidden, 1);
  mark(a, s, Mark::kUpStage);
  const uint8_t* staged = reinterpret_cast<const uint8_t*>(s.act) + expert_smem(a.hidden, 1).staged;
  const int inter = a.intermediate, mlp1 = 2 * inter, nb = a.hidden / kMxBlock;
  const int tiles_per_expert = mlp1 / dev::kMxfp4TileRows;  // inter % 32 == 0 (checked at launch)
  const int tiles = a.experts_per_token * tiles_per_expert;
  // CTA b owns tiles b, b + grid, ... (so every SM gets a share) and computes them in rounds of
  // kUpTilesPerRound tiles, each tile's K range split over kUpSplits warps so that all warps are
  // busy; the partial sums meet in shared memory and are added in split order.
  const int my_tiles = tiles > int(blockIdx.x) ? (tiles - 1 - int(blockIdx.x)) / int(gridDim.x) + 1 : 0;
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + expert_smem(a.hidden, 1).red);
  const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int warp = threadIdx.x >> 5, slot = warp / kUpSplits, split = warp % kUpSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kUpSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kUpSplits * dev::kMxfp4BlocksPerStep);
  auto tile_expert = [&](int j, int* r, int* row0) {
    const int t = int(blockIdx.x) + j * int(gridDim.x);
    *r = t / tiles_per_expert;
    *row0 = (t % tiles_per_expert) * dev::kMxfp4TileRows;
    return size_t(s.sel[*r]);
  };
  for (int j0 = 0; j0 < my_tiles; j0 += kUpTilesPerRound) {
    const int j = j0 + slot;
    if (j < my_tiles) {
      int r, row0;
      const size_t expert = tile_expert(j, &r, &row0);
      const dev::Mxfp4Matrix w{L.mlp1_blocks + expert * mlp1 * (size_t(nb) * dev::kMxfp4BlockBytes),
                               L.mlp1_scales + expert * mlp1 * size_t(nb), mlp1, nb};
      float acc[2] = {0.0f, 0.0f};
      if (kb_begin < kb_end) expert_tile(acc, a.experts_fp8, w, staged, row0, kb_begin, kb_end);
      if (tig == 0) {
        red[warp * dev::kMxfp4TileRows + gid] = acc[0];
        red[warp * dev::kMxfp4TileRows + gid + 8] = acc[1];
      }
    }
    __syncthreads();
    // One thread per (tile, channel): rows 2c (gate) and 2c + 1 (up) of the tile.
    constexpr int kChannels = dev::kMxfp4TileRows / 2;
    const int sl = int(threadIdx.x) / kChannels, c = int(threadIdx.x) % kChannels;
    if (sl < kUpTilesPerRound && j0 + sl < my_tiles) {
      int r, row0;
      const size_t expert = tile_expert(j0 + sl, &r, &row0);
      float gate = 0.0f, up = 0.0f;
      for (int q = 0; q < kUpSplits; ++q) {
        gate += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c];
        up += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c + 1];
      }
      const size_t bias = expert * mlp1 + row0 + 2 * c;
      gate += bf16_bits_to_float(L.mlp1_bias[bias]);
      up += bf16_bits_to_float(L.mlp1_bias[bias + 1]);
      a.swiglu_out[r * inter + row0 / 2 + c] = float_to_bf16_bits(swiglu(gate, up, a.swiglu_limit));
    }
    __syncthreads();
  }
  mark(a, s, Mark::kUpGemv);
}

// Phase kExpertsDown: CTA b takes 16-row tiles b, b + grid, ... of the hidden dimension; its
// warps split as (expert rank, K split) and compute y_e = W2_e a_e over their share of K; the
// partial sums meet in shared memory and x[n] += sum_e w_e (y_e[n] + b2_e[n]) in rank order.
__device__ void phase_experts_down(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int inter = a.intermediate, k = a.experts_per_token, nb = inter / kMxBlock;
  const int tiles = (a.hidden + dev::kMxfp4TileRows - 1) / dev::kMxfp4TileRows;
  if (int(blockIdx.x) >= tiles) return;  // nothing to do (tiny shapes on a big grid)
  bf16_act_to_smem(s.act, a.swiglu_out, k * inter);
  __syncthreads();
  mark(a, s, Mark::kDownCopy);
  stage_expert_inputs(s, false, inter, k);  // BF16 input in both modes
  mark(a, s, Mark::kDownStage);
  const ExpertSmem e = expert_smem(inter, k);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(s.act);
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + e.red);
  const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int warp = threadIdx.x >> 5, r = warp / kDownSplits, split = warp % kDownSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kDownSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kDownSplits * dev::kMxfp4BlocksPerStep);
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int row0 = tile * dev::kMxfp4TileRows;
    if (r < k) {
      const size_t expert = size_t(s.sel[r]);
      const dev::Mxfp4Matrix w{
          L.mlp2_blocks + expert * a.hidden * (size_t(nb) * dev::kMxfp4BlockBytes),
          L.mlp2_scales + expert * a.hidden * size_t(nb), a.hidden, nb};
      float acc[2] = {0.0f, 0.0f};
      if (kb_begin < kb_end) {
        expert_tile(acc, false, w, base + e.staged + r * e.staged_stride, row0, kb_begin, kb_end);
      }
      if (tig == 0) {
        red[warp * dev::kMxfp4TileRows + gid] = acc[0];
        red[warp * dev::kMxfp4TileRows + gid + 8] = acc[1];
      }
    }
    __syncthreads();
    const int row = row0 + int(threadIdx.x);
    if (threadIdx.x < dev::kMxfp4TileRows && row < a.hidden) {
      float moe = 0.0f;
      for (int q = 0; q < k; ++q) {
        float y = 0.0f;
        for (int p = 0; p < kDownSplits; ++p) y += red[(q * kDownSplits + p) * dev::kMxfp4TileRows + threadIdx.x];
        y += bf16_bits_to_float(L.mlp2_bias[size_t(s.sel[q]) * a.hidden + row]);
        moe = fmaf(s.sel_w[q], y, moe);
      }
      a.x[row] = ld_act(a.x + row) + moe;
    }
    __syncthreads();
  }
  mark(a, s, Mark::kDownGemv);
}

// Final norm and LM head with a fused argmax: each warp keeps its best (value, lowest index)
// over its rows, each CTA its best over its warps; the last CTA to finish (counter) reduces the
// CTAs and writes the token. Logits are stored only when a.logits is set.
__device__ void phase_lm_head(const MegakernelArgs& a, const Smem& s) {
  rmsnorm_to_smem(s.act, a.x, nullptr, a.final_norm, a.hidden, a.rms_norm_eps, s);
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
      if (a.phase_times) a.phase_times[1 + a.num_layers * int(kNumPhases)] = dev::global_timer_ns();
    }
  }
}

__global__ void __launch_bounds__(kThreads, 1) megakernel_kernel(MegakernelArgs a) {
  extern __shared__ float4 smem_raw[];
  Smem s = carve_smem(reinterpret_cast<float*>(smem_raw), a);
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
  const bool timeline = a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0;
  if (timeline) a.phase_times[0] = dev::global_timer_ns();
  for (int layer = a.start_layer; layer < a.num_layers; ++layer) {
    const LayerArgs& L = a.layers[layer];
    s.layer = layer;
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
      if (timeline) a.phase_times[1 + layer * int(kNumPhases) + p] = dev::global_timer_ns();
      if (layer == a.stop_layer && p == a.stop_phase) return;
    }
  }
  if ((a.phase_mask >> kNumPhases) & 1u) phase_lm_head(a, s);
}

}  // namespace

size_t megakernel_smem_bytes(const MegakernelArgs& a) {
  return sizeof(float) * (act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token,
                                     a.intermediate) +
                          4 * kWarps + 2 * kMaxTopK + 4);
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
  // cta_gemv_bf16's partial sums share the activation region with the input vector.
  const int act = act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token, a.intermediate);
  const int qkv_pairs = (a.num_heads + 2 * a.num_kv_heads) * kHeadDim / 2;
  const int qkv_need = a.hidden + 2 * ((qkv_pairs + grid - 1) / grid) * kKSplit + 4;
  const int out_need = a.num_heads * a.head_dim + ((a.hidden + grid - 1) / grid) * kKSplit + 4;
  if (grid < 1 || qkv_need > act || out_need > act) {
    throw Error(fmt::format("megakernel: a grid of {} CTAs is too small for this model's "
                            "projections (shared memory)", grid));
  }
  if (a.max_splits < 1 || a.max_splits > kMaxAttentionSplits) {
    throw Error(fmt::format("megakernel: {} attention splits per KV head (1 to {} supported)",
                            a.max_splits, kMaxAttentionSplits));
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
