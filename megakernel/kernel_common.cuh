// kernel_common.cuh — what every phase of the persistent kernel shares: the CTA shape, the
// shared-memory carve-up, small conversions, the block-scope RMSNorm and activation copies, the
// BF16 CTA GEMV (contiguous row ranges, K split over warps) and the profiling marks.
// Included by megakernel.cu only (one translation unit); block scope = the CTA's kThreads threads.
#pragma once

#include <climits>

#include "device_ops/gemv_mxfp4.cuh"
#include "device_ops/numeric.cuh"
#include "device_ops/platform.cuh"
#include "megakernel/kernel_args.h"
#include "megakernel/megakernel.h"
#include "megakernel/phases.h"

namespace gptoss::mk::kernel {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
// Lanes, tiles and shuffles below are written for 32-lane warps (logical warps on wave64 AMD).
static_assert(dev::kWarpSize == 32, "the megakernel's tiles assume 32-lane warps");
static_assert(kMaxAttentionSplits <= kWarps, "the split merge reuses the per-warp state region");
constexpr int kHeadDim = 64;        // RoPE tables and attention tiles assume it (checked at launch)
constexpr int kMaxGroup = 8;        // query heads per KV head
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

// Sixteen E4M3 codes (one 16-byte load) times t[0..15], summed in order in FP32; the caller
// applies the row scale. Decoded two at a time by the packed conversion (exact), which costs
// about 2.5 instructions per weight byte against 4 for the bit-field decode it replaced
// (docs/PERF.md, session 7: the dense GEMVs are issue-bound).
__device__ __forceinline__ float dot4_e4m3(uint32_t w, const float4 a, float acc) {
  const float2 lo = dev::e4m3x2_to_float2(w), hi = dev::e4m3x2_to_float2(w >> 16);
  acc = fmaf(lo.x, a.x, acc);
  acc = fmaf(lo.y, a.y, acc);
  acc = fmaf(hi.x, a.z, acc);
  return fmaf(hi.y, a.w, acc);
}
__device__ __forceinline__ float dot16_e4m3(uint4 w, const float* t) {
  const float4* t4 = reinterpret_cast<const float4*>(t);
  const float2 lo = dev::e4m3x2_to_float2(w.x), hi = dev::e4m3x2_to_float2(w.x >> 16);
  float acc = lo.x * t4[0].x;
  acc = fmaf(lo.y, t4[0].y, acc);
  acc = fmaf(hi.x, t4[0].z, acc);
  acc = fmaf(hi.y, t4[0].w, acc);
  acc = dot4_e4m3(w.y, t4[1], acc);
  acc = dot4_e4m3(w.z, t4[2], acc);
  return dot4_e4m3(w.w, t4[3], acc);
}

// The two stored formats of the dense weights (qkv, out_proj, LM head), as GEMV traits: values
// per 16-byte chunk and the chunk's dot product with floats in shared memory.
struct Bf16Weights {
  using Elem = uint16_t;
  static constexpr int kPerChunk = 8;
  static __device__ __forceinline__ float dot(uint4 w, const float* t) { return dot8(w, t); }
};
struct E4m3Weights {
  using Elem = uint8_t;
  static constexpr int kPerChunk = 16;
  static __device__ __forceinline__ float dot(uint4 w, const float* t) { return dot16_e4m3(w, t); }
};

// The factor from an FP8 row's sum to the row's value: its scale (model/fp8_rows.h).
__device__ __forceinline__ float fp8_row_factor(const float* scales, int row) {
  return scales[row];  // written before the launch: any cache
}

template <class W>
__device__ __forceinline__ float warp_dot(const typename W::Elem* row, const float* t, int k) {
  const int lane = threadIdx.x & 31;
  const uint4* w = reinterpret_cast<const uint4*>(row);
  const int chunks = k / W::kPerChunk;
  float acc = 0.0f;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) acc += W::dot(ld_weight(w + c), t + W::kPerChunk * c);
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
    a.phase_times[mark_slot(a.num_layers, s.layer, m)] =
        dev::global_timer_ns();
  }
}

// Profiling: the latest time any warp of CTA 0 (or of any CTA) reached mark m (lane 0 of each
// warp; the slot is cleared by reset_mark_max, for CTA 0 at the start of the phase, ordered by a
// later __syncthreads(); for any CTA in the phase before, ordered by the grid barrier).
__device__ __forceinline__ void mark_max(const MegakernelArgs& a, const Smem& s, Mark m,
                                         bool any_cta = false) {
  if (a.phase_times != nullptr && (any_cta || blockIdx.x == 0) && (threadIdx.x & 31) == 0) {
    atomicMax(reinterpret_cast<unsigned long long*>(a.phase_times + mark_slot(a.num_layers, s.layer, m)),
              static_cast<unsigned long long>(dev::global_timer_ns()));
  }
}
__device__ __forceinline__ void reset_mark_max(const MegakernelArgs& a, const Smem& s, Mark m) {
  if (a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0) {
    a.phase_times[mark_slot(a.num_layers, s.layer, m)] = 0;
  }
}

// ---- phases ---------------------------------------------------------------------------------

// Block-level GEMV for the dense phases: a CTA owns a contiguous range of rows (so every SM
// streams the same number of bytes) and its warps split as kRowGroups x kKSplit (rows x K
// quarters). W: Bf16Weights or E4m3Weights (raw sums: the caller applies the row scales).
// Rows i in [0, n_rows): row(i) gives the row's k weights (16-byte aligned); t = k floats in
// shared memory. On return (after a __syncthreads()) red[i * kKSplit + q] holds
// the partial sum of K quarter q: callers add the quarters in order. red: n_rows * kKSplit floats
// of shared memory.
constexpr int kKSplit = 4;
constexpr int kRowGroups = kWarps / kKSplit;
constexpr int kGemvRows = 4;  // rows per warp iteration (their loads are in flight together)

template <class W, class RowFn>
__device__ void cta_gemv(RowFn row, int n_rows, const float* t, int k, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int q = warp % kKSplit, group = warp / kKSplit;
  const int chunks = k / W::kPerChunk;
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
      for (int r = 0; r < kGemvRows; ++r) acc[r] += W::dot(v[r], t + W::kPerChunk * c);
    }
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const float sum = warp_sum(acc[r]);
      if (lane == 0 && w[r]) red[(i0 + r * kRowGroups) * kKSplit + q] = sum;
    }
  }
  __syncthreads();
}

template <class RowFn>
__device__ __forceinline__ void cta_gemv_bf16(RowFn row, int n_rows, const float* t, int k, float* red) {
  cta_gemv<Bf16Weights>(row, n_rows, t, k, red);
}

__device__ __forceinline__ float sum_splits(const float* red, int i) {
  float v = 0.0f;
#pragma unroll
  for (int q = 0; q < kKSplit; ++q) v += red[i * kKSplit + q];
  return v;
}

}  // namespace gptoss::mk::kernel
