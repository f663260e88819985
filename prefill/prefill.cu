// prefill.cu — the batched prefill kernels and their per-layer schedule (prefill.h): row RMSNorms,
// the projections and the grouped MoE GEMMs on tensor cores (gemm_tiles.cuh), RoPE, causal flash
// attention over the cache and the chunk, the K/V write into the decode kernel's cache, top-k
// routing, the per-expert grouping and the weighted scatter back into the residual. Each kernel
// mirrors the rounding points of the decode kernel's phase (megakernel/phase_*.cuh) and of the CPU
// reference (host/reference/): bf16 after every rmsnorm, after RoPE, after attention and after the
// SwiGLU; the residual stays fp32. Launches on the default stream; no synchronization.
#include "prefill/prefill.h"

#include <algorithm>
#include <climits>
#include <cstddef>

#include "device_ops/numeric.cuh"
#include "device_ops/platform.cuh"
#include "device_ops/router_topk.cuh"  // warp_router_topk: the decode kernel's tie and softmax rule
#include "device_ops/swiglu.cuh"
#include "host/gpu.h"
#include "prefill/gemm_tiles.cuh"

namespace gptoss::prefill {
namespace kernel {

constexpr int kHeadDim = 64;      // RoPE pairs and attention tiles (checked by prefill_shape_problem)
constexpr int kMaxGroup = 8;      // query heads per KV head
constexpr int kMaxTopK = 4;
constexpr int kMaxExperts = 256;  // warp_router_topk with 8 logits per lane
constexpr int kRowThreads = 256;  // row kernels (embed, rmsnorm)
constexpr int kAttnTokens = 8;    // attention: query tokens per CTA, one warp each
constexpr int kKeyTile = 32;      // attention: keys per shared-memory tile, one per lane
constexpr float kAttnScale = 0.125f;  // 1/sqrt(head_dim)
constexpr int kMaxRowWarps = kRowThreads / 32;

__device__ __forceinline__ float bf16_bits_to_float(uint32_t b) { return dev::bf16_bits_to_float(b); }
__device__ __forceinline__ uint16_t to_bf16_bits(float f) { return uint16_t(dev::float_to_bf16_bits(f)); }

// x[t] = the embedding row of token t (the decode kernel's layer-0 input, exact in fp32).
__global__ void embed_rows_kernel(float* x, const uint16_t* embed, const int32_t* tokens, int hidden) {
  const uint16_t* row = embed + size_t(tokens[blockIdx.x]) * hidden;
  float* out = x + size_t(blockIdx.x) * hidden;
  for (int i = int(threadIdx.x); i < hidden; i += kRowThreads) out[i] = bf16_bits_to_float(row[i]);
}

// One CTA per row: out = bf16((x * r) * gain) with r = float(1 / sqrt(mean(x^2) + eps)), the mean
// accumulated in fp64 (rmsnorm_to_smem's rule). With out_fp8 non-null also the same row through
// E4M3 codes + E8M0 scales per 32 values (block_quantize_fp8's rule), written back dequantized
// (exact in bf16): the expert input of --experts fp8. Dynamic shared memory: hidden floats.
__global__ void rmsnorm_rows_kernel(uint16_t* out, uint16_t* out_fp8, const float* x,
                                    const uint16_t* gain, int hidden, float eps) {
  extern __shared__ float row_smem[];
  __shared__ double partial[kMaxRowWarps];
  const float* xr = x + size_t(blockIdx.x) * hidden;
  double sum = 0.0;
  for (int i = int(threadIdx.x); i < hidden; i += kRowThreads) {
    const float v = xr[i];
    row_smem[i] = v;
    sum += double(v) * double(v);
  }
  for (int o = 16; o > 0; o >>= 1) sum += dev::shfl_xor(sum, o);
  if (dev::lane_id() == 0) partial[dev::warp_id()] = sum;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kMaxRowWarps; ++w) total += partial[w];
  const float r = float(1.0 / sqrt(total / hidden + double(eps)));
  uint16_t* o = out + size_t(blockIdx.x) * hidden;
  for (int i = int(threadIdx.x); i < hidden; i += kRowThreads) {
    const float v = dev::round_to_bf16((row_smem[i] * r) * bf16_bits_to_float(gain[i]));
    row_smem[i] = v;
    o[i] = to_bf16_bits(v);
  }
  if (out_fp8 == nullptr) return;
  __syncthreads();
  uint16_t* q = out_fp8 + size_t(blockIdx.x) * hidden;
  for (int b = dev::warp_id(); b < hidden / dev::kMxfp4BlockElems; b += kMaxRowWarps) {
    const int i = b * dev::kMxfp4BlockElems + dev::lane_id();
    const float v = row_smem[i];
    float amax = fabsf(v);
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, dev::shfl_xor(amax, off));
    float deq = 0.0f;
    if (amax > 0.0f) {
      const int e = dev::fp8_block_exponent(amax);
      deq = ldexpf(dev::e4m3_to_float(dev::float_to_e4m3(v * dev::exp2_neg_int(e))), e);
    }
    q[i] = to_bf16_bits(deq);
  }
}

// ---- the GEMMs -------------------------------------------------------------------------------
// Epilogues: epi(m_local, n, v0, v1) for columns n, n + 1 of local row m_local.

// Row n's value: the sum times the row scale of E4M3 weights (null for BF16), plus the bias.
__device__ __forceinline__ float row_value(float acc, const float* scale, const uint16_t* bias, int n) {
  return (scale ? acc * scale[n] : acc) + bf16_bits_to_float(bias[n]);
}

// qkv (pre-RoPE, fp32) = row_value; with `residual` x += row_value instead (out_proj into the
// residual, phase_out_proj's order).
struct ProjectionEpi {
  float* out;  // [T, n_rows]: pre-RoPE qkv, or the residual x
  const float* scale;
  const uint16_t* bias;
  int m0, n_rows;
  bool residual;
  __device__ void operator()(int m, int n, float v0, float v1) const {
    float* o = out + size_t(m0 + m) * n_rows;
    const float base0 = residual ? o[n] : 0.0f;
    o[n] = residual ? base0 + row_value(v0, scale, bias, n) : row_value(v0, scale, bias, n);
    if (n + 1 < n_rows) {
      const float base1 = residual ? o[n + 1] : 0.0f;
      o[n + 1] = residual ? base1 + row_value(v1, scale, bias, n + 1) : row_value(v1, scale, bias, n + 1);
    }
  }
};

// router logits = acc + bias.
struct RouterEpi {
  float* out;  // [T, E]
  const uint16_t* bias;
  int m0, n_rows;
  __device__ void operator()(int m, int n, float v0, float v1) const {
    float* o = out + size_t(m0 + m) * n_rows;
    o[n] = v0 + bf16_bits_to_float(bias[n]);
    if (n + 1 < n_rows) o[n + 1] = v1 + bf16_bits_to_float(bias[n + 1]);
  }
};

template <class W, class Epi>
__global__ void __launch_bounds__(kGemmThreads) dense_gemm_kernel(const uint16_t* a, int m_total,
                                                                  W w, Epi epi) {
  __shared__ __align__(16) uint16_t as[2 * kStageElems];
  __shared__ __align__(16) uint16_t ws[2 * kStageElems];
  __shared__ const uint16_t* a_rows[kTileM];
  const int m0 = int(blockIdx.x) * kTileM, n0 = int(blockIdx.y) * kTileN;
  for (int m = int(threadIdx.x); m < kTileM; m += kGemmThreads) {
    a_rows[m] = m0 + m < m_total ? a + size_t(m0 + m) * w.k : nullptr;
  }
  __syncthreads();
  float acc[2][4][4];
  gemm_tile(acc, a_rows, w, n0, w.k, as, ws);
  epi.m0 = m0;
  gemm_epilogue(acc, n0, min(kTileM, m_total - m0), w.rows, epi);
}

// Grouped MoE: CTA x = one tile of (expert, up to kTileM slots) from moe_group_kernel's list.
// mlp1 (up): A row of slot s = t_experts[s / k]; epilogue: bias, clamped SwiGLU of the
// interleaved (gate, up) pair, bf16 into swiglu[s]. mlp2 (down): A row = swiglu[s]; epilogue:
// y[s] = acc + bias (fp32; the weighted sum over ranks happens in combine_kernel).
struct MoeArgs {
  const uint8_t* blocks;  // [E, rows, k/32, 16]
  const uint8_t* scales;  // [E, rows, k/32]
  const uint16_t* bias;   // [E, rows]
  int rows, k;
  const uint16_t* a;      // up: t_experts [T, hidden]; down: swiglu [T * topk, inter]
  int a_div;              // A row = slot / a_div (up: topk; down: 1)
  const int32_t* slots;
  const int32_t* tiles;
  const int32_t* num_tiles;
  bool up;
  uint16_t* swiglu;       // up output [T * topk, inter]
  float* y;               // down output [T * topk, hidden]
  float swiglu_limit;
};

struct MoeEpi {
  const MoeArgs* p;
  const int32_t* slot_of;  // [kTileM] in shared memory
  int expert;
  __device__ void operator()(int m, int n, float v0, float v1) const {
    const int slot = slot_of[m];
    const uint16_t* b = p->bias + size_t(expert) * p->rows;
    if (p->up) {
      const float gate = v0 + bf16_bits_to_float(b[n]);
      const float up = v1 + bf16_bits_to_float(b[n + 1]);
      p->swiglu[size_t(slot) * (p->rows / 2) + n / 2] = to_bf16_bits(dev::swiglu(gate, up, p->swiglu_limit));
    } else {
      float* o = p->y + size_t(slot) * p->rows;
      o[n] = v0 + bf16_bits_to_float(b[n]);
      if (n + 1 < p->rows) o[n + 1] = v1 + bf16_bits_to_float(b[n + 1]);
    }
  }
};

__global__ void __launch_bounds__(kGemmThreads) moe_gemm_kernel(MoeArgs p) {
  if (int(blockIdx.x) >= *p.num_tiles) return;
  __shared__ __align__(16) uint16_t as[2 * kStageElems];
  __shared__ __align__(16) uint16_t ws[2 * kStageElems];
  __shared__ const uint16_t* a_rows[kTileM];
  __shared__ int32_t slot_of[kTileM];
  const int expert = p.tiles[3 * blockIdx.x], first = p.tiles[3 * blockIdx.x + 1];
  const int count = p.tiles[3 * blockIdx.x + 2];
  const int n0 = int(blockIdx.y) * kTileN;
  for (int m = int(threadIdx.x); m < kTileM; m += kGemmThreads) {
    const int slot = m < count ? p.slots[first + m] : -1;
    slot_of[m] = slot;
    a_rows[m] = slot >= 0 ? p.a + size_t(slot / p.a_div) * p.k : nullptr;
  }
  __syncthreads();
  const int nb = p.k / dev::kMxfp4BlockElems;
  const Mxfp4Rows w{p.blocks + size_t(expert) * p.rows * nb * dev::kMxfp4BlockBytes,
                    p.scales + size_t(expert) * p.rows * nb, p.rows, p.k};
  float acc[2][4][4];
  gemm_tile(acc, a_rows, w, n0, p.k, as, ws);
  MoeEpi epi{&p, slot_of, expert};
  gemm_epilogue(acc, n0, count, p.rows, epi);
}

// ---- RoPE, attention, the cache ------------------------------------------------------------------

// qkv (bf16) from the fp32 pre-RoPE values: q and k heads rotated by the YaRN table row of their
// position (pairs (i, i + 32), phase_norm_qkv_rope's arithmetic), v heads rounded as they are.
// One thread per (token, head, pair).
__global__ void rope_kernel(uint16_t* qkv, const float* pre, const float* rope_table, int count,
                            int first_pos, int num_heads, int num_kv_heads) {
  constexpr int kHalf = kHeadDim / 2;
  const int heads = num_heads + 2 * num_kv_heads, qkv_dim = heads * kHeadDim;
  const int64_t total = int64_t(count) * heads * kHalf;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < total;
       item += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(item / (heads * kHalf)), rest = int(item % (heads * kHalf));
    const int head = rest / kHalf, i = rest % kHalf;
    const size_t row_a = size_t(t) * qkv_dim + head * kHeadDim + i, row_b = row_a + kHalf;
    float va = pre[row_a], vb = pre[row_b];
    if (head < num_heads + num_kv_heads) {
      const float* rope = rope_table + size_t(first_pos + t) * kHeadDim;
      const float c = rope[i], sn = rope[kHalf + i];
      const float ra = va * c - vb * sn;
      const float rb = vb * c + va * sn;
      va = ra;
      vb = rb;
    }
    qkv[row_a] = to_bf16_bits(va);
    qkv[row_b] = to_bf16_bits(vb);
  }
}

// Causal GQA attention with sinks, flash style: CTA = (kAttnTokens consecutive query tokens, one
// KV head); warp w = query token w with all `group` heads of the KV head. Keys at positions before
// first_pos come from the cache (ring slot on sliding layers), keys of the chunk from its qkv rows
// (the cache is written after this kernel, so a sliding layer's ring may be overwritten by the
// chunk's own later keys without harm). Key tiles of 32 are staged in shared memory as floats; lane
// j scores key j, online softmax per head, then P V with two dimensions per lane.
__global__ void __launch_bounds__(kAttnTokens * 32) attention_kernel(
    uint16_t* attn, const uint16_t* qkv, mk::LayerArgs L, int count, int first_pos,
    int num_heads, int num_kv_heads, int window) {
  __shared__ float q_s[kAttnTokens][kMaxGroup][kHeadDim];
  __shared__ float k_s[kKeyTile][kHeadDim + 1];
  __shared__ __align__(16) float v_s[kKeyTile][kHeadDim];
  const int g = int(blockIdx.y), group = num_heads / num_kv_heads;
  const int q_dim = num_heads * kHeadDim, kv_dim = num_kv_heads * kHeadDim, qkv_dim = q_dim + 2 * kv_dim;
  const int t0 = int(blockIdx.x) * kAttnTokens;
  const int lane = dev::lane_id(), warp = dev::warp_id();
  const int t = t0 + warp;
  const bool live = t < count;
  const int pos = first_pos + t;
  const bool sliding = L.sliding != 0;
  // This warp's keys [lo, hi]; the CTA's union [tile_lo, tile_hi].
  const int lo = sliding ? max(0, pos - window + 1) : 0, hi = pos;
  const int t_last = min(count, t0 + kAttnTokens) - 1;
  const int tile_lo = sliding ? max(0, first_pos + t0 - window + 1) : 0;
  const int tile_hi = first_pos + t_last;
  for (int idx = int(threadIdx.x); idx < kAttnTokens * kMaxGroup * kHeadDim; idx += blockDim.x) {
    const int tt = idx / (kMaxGroup * kHeadDim), h = (idx / kHeadDim) % kMaxGroup, d = idx % kHeadDim;
    float v = 0.0f;
    if (t0 + tt < count && h < group) {
      v = bf16_bits_to_float(qkv[size_t(t0 + tt) * qkv_dim + (g * group + h) * kHeadDim + d]);
    }
    q_s[tt][h][d] = v;
  }
  float m[kMaxGroup], l[kMaxGroup], acc[kMaxGroup][2];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
    acc[h][0] = acc[h][1] = 0.0f;
  }
  const uint16_t* kc = L.k_cache + size_t(g) * L.kv_capacity * kHeadDim;
  const uint16_t* vc = L.v_cache + size_t(g) * L.kv_capacity * kHeadDim;
  for (int k0 = tile_lo; k0 <= tile_hi; k0 += kKeyTile) {
    __syncthreads();  // q_s written (first tile) / the previous tile consumed
    for (int idx = int(threadIdx.x); idx < 2 * kKeyTile * (kHeadDim / 8); idx += blockDim.x) {
      const bool value = idx >= kKeyTile * (kHeadDim / 8);
      const int j = (idx / (kHeadDim / 8)) % kKeyTile, c = idx % (kHeadDim / 8), p = k0 + j;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (p <= tile_hi) {
        const uint16_t* src;
        if (p >= first_pos) {
          src = qkv + size_t(p - first_pos) * qkv_dim + q_dim + (value ? kv_dim : 0) + g * kHeadDim;
        } else {
          const int slot = sliding ? p % L.kv_capacity : p;
          src = (value ? vc : kc) + size_t(slot) * kHeadDim;
        }
        v = *reinterpret_cast<const uint4*>(src + 8 * c);
      }
      float f[8];
      dev::bf16x8_to_float(v, f);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        if (value) {
          v_s[j][8 * c + e] = f[e];
        } else {
          k_s[j][8 * c + e] = f[e];
        }
      }
    }
    __syncthreads();
    if (!live || k0 > hi || k0 + kKeyTile <= lo) continue;  // no key of this tile for this warp
    const int p = k0 + lane;
    const bool valid = p >= lo && p <= hi;
    float sc[kMaxGroup];
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) sc[h] = 0.0f;
    for (int d = 0; d < kHeadDim; ++d) {
      const float kd = k_s[lane][d];
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) sc[h] = fmaf(q_s[warp][h][d], kd, sc[h]);
    }
    float pr[kMaxGroup];
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      pr[h] = 0.0f;
      if (h >= group) continue;
      const float logit = valid ? sc[h] * kAttnScale : -INFINITY;
      float tile_max = logit;
      for (int o = 16; o > 0; o >>= 1) tile_max = fmaxf(tile_max, dev::shfl_xor(tile_max, o));
      const float m_new = fmaxf(m[h], tile_max);  // finite: the tile has a valid key for this warp
      const float corr = __expf(m[h] - m_new);    // m[h] = -inf the first time: 0
      pr[h] = valid ? __expf(logit - m_new) : 0.0f;
      float psum = pr[h];
      for (int o = 16; o > 0; o >>= 1) psum += dev::shfl_xor(psum, o);
      l[h] = l[h] * corr + psum;
      acc[h][0] *= corr;
      acc[h][1] *= corr;
      m[h] = m_new;
    }
    for (int jj = 0; jj < kKeyTile; ++jj) {
      const float2 vv = *reinterpret_cast<const float2*>(&v_s[jj][2 * lane]);
#pragma unroll
      for (int h = 0; h < kMaxGroup; ++h) {
        const float ph = dev::shfl(pr[h], jj);
        acc[h][0] = fmaf(ph, vv.x, acc[h][0]);
        acc[h][1] = fmaf(ph, vv.y, acc[h][1]);
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h >= group) continue;
    const float sink = bf16_bits_to_float(L.sinks[g * group + h]);
    const float m2 = fmaxf(sink, m[h]);
    const float f = __expf(m[h] - m2);
    const float l2 = __expf(sink - m2) + l[h] * f;
    uint16_t* o = attn + size_t(t) * q_dim + (g * group + h) * kHeadDim;
    o[2 * lane] = to_bf16_bits((acc[h][0] * f) / l2);
    o[2 * lane + 1] = to_bf16_bits((acc[h][1] * f) / l2);
  }
}

// The chunk's K and V into the layer's cache. On a sliding layer only the last kv_capacity
// positions are written (earlier ones share their ring slots with later ones and would lose).
// One thread per (token, KV head, 8 dimensions), K and V.
__global__ void kv_write_kernel(mk::LayerArgs L, const uint16_t* qkv, int count, int first_pos,
                                int num_heads, int num_kv_heads) {
  const int q_dim = num_heads * kHeadDim, kv_dim = num_kv_heads * kHeadDim, qkv_dim = q_dim + 2 * kv_dim;
  const int chunks = kHeadDim / 8;
  const int64_t total = int64_t(count) * num_kv_heads * chunks;
  const int t_begin = L.sliding ? max(0, count - L.kv_capacity) : 0;
  for (int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; item < total;
       item += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(item / (num_kv_heads * chunks));
    if (t < t_begin) continue;
    const int g = int(item / chunks % num_kv_heads), c = int(item % chunks);
    const int p = first_pos + t, slot = L.sliding ? p % L.kv_capacity : p;
    const uint16_t* src = qkv + size_t(t) * qkv_dim + q_dim + g * kHeadDim + 8 * c;
    const size_t dst = (size_t(g) * L.kv_capacity + slot) * kHeadDim + 8 * c;
    *reinterpret_cast<uint4*>(L.k_cache + dst) = *reinterpret_cast<const uint4*>(src);
    *reinterpret_cast<uint4*>(L.v_cache + dst) = *reinterpret_cast<const uint4*>(src + kv_dim);
  }
}

// ---- MoE routing -----------------------------------------------------------------------------------

// One warp per token: top-k of the router logits (lowest index wins ties; a NaN never wins) and
// the softmax over the chosen k (warp_router_topk, the decode kernel's rule).
__global__ void topk_kernel(int32_t* ids, float* weights, const float* logits, int count,
                            int num_experts) {
  const int t = int(blockIdx.x) * (int(blockDim.x) / 32) + dev::warp_id();
  if (t >= count) return;
  const float* row = logits + size_t(t) * num_experts;
  const dev::TopK<kMaxTopK> r = dev::warp_router_topk<kMaxTopK, kMaxExperts / 32>(row, num_experts);
  if (dev::lane_id() < kMaxTopK) {
    const int k = dev::lane_id();
    ids[t * kMaxTopK + k] = min(max(r.index[k], 0), num_experts - 1);
    weights[t * kMaxTopK + k] = r.weight[k];
  }
}

// One CTA: histogram of the chosen experts, slots grouped by expert (order inside a group is
// irrelevant: every slot's output row is its own), and the tile list of moe_gemm_kernel.
__global__ void moe_group_kernel(int32_t* slots, int32_t* tiles, int32_t* num_tiles,
                                 const int32_t* ids, int num_slots, int num_experts) {
  __shared__ int counts[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  for (int e = int(threadIdx.x); e < num_experts; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (int i = int(threadIdx.x); i < num_slots; i += blockDim.x) atomicAdd(&counts[ids[i]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int offset = 0, n = 0;
    for (int e = 0; e < num_experts; ++e) {
      cursor[e] = offset;
      for (int s = 0; s < counts[e]; s += kTileM) {
        tiles[3 * n] = e;
        tiles[3 * n + 1] = offset + s;
        tiles[3 * n + 2] = min(kTileM, counts[e] - s);
        ++n;
      }
      offset += counts[e];
    }
    *num_tiles = n;
  }
  __syncthreads();
  for (int i = int(threadIdx.x); i < num_slots; i += blockDim.x) {
    slots[atomicAdd(&cursor[ids[i]], 1)] = i;
  }
}

// x[t] += sum over ranks r (in rank order, fmaf as phase_experts_down) of w[t][r] * y[t * k + r].
__global__ void combine_kernel(float* x, const float* y, const float* weights, int count, int hidden) {
  const int64_t total = int64_t(count) * hidden;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(i / hidden), n = int(i % hidden);
    float moe = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxTopK; ++r) {
      moe = fmaf(weights[t * kMaxTopK + r], y[(size_t(t) * kMaxTopK + r) * hidden + n], moe);
    }
    x[i] = x[i] + moe;
  }
}

}  // namespace kernel

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int max_moe_tiles(const PrefillDims& d, int tokens) {
  return (tokens * d.experts_per_token + kernel::kTileM - 1) / kernel::kTileM + d.num_experts;
}

int grid_1d(int64_t items, int threads) {
  return int(std::min<int64_t>((items + threads - 1) / threads, 1 << 16));
}

// Scratch layout in one place: carve_prefill_scratch fills the pointers, prefill_scratch_bytes
// sums the sizes.
template <class Fn>
void visit_scratch(const PrefillDims& d, int n, Fn&& fn) {
  const size_t T = size_t(n), k = size_t(d.experts_per_token);
  fn("tokens", T * sizeof(int32_t));
  fn("x", T * d.hidden * sizeof(float));
  fn("t", T * d.hidden * 2);
  fn("t_experts", T * d.hidden * 2);
  fn("qkv", T * d.qkv_dim() * 2);
  fn("attn", T * d.q_dim() * 2);
  fn("router", T * d.num_experts * sizeof(float));
  fn("expert_ids", T * k * sizeof(int32_t));
  fn("expert_w", T * k * sizeof(float));
  fn("slots", T * k * sizeof(int32_t));
  fn("tiles", size_t(max_moe_tiles(d, n)) * 3 * sizeof(int32_t));
  fn("num_tiles", sizeof(int32_t));
  fn("swiglu", T * k * d.intermediate * 2);
  fn("y", std::max(T * k * d.hidden, T * d.qkv_dim()) * sizeof(float));
}

}  // namespace

std::string prefill_shape_problem(const PrefillDims& d) {
  using namespace kernel;
  if (d.head_dim != kHeadDim) return "head_dim must be 64";
  if (d.num_kv_heads < 1 || d.num_heads % d.num_kv_heads != 0 || d.num_heads / d.num_kv_heads > kMaxGroup) {
    return "at most 8 query heads per KV head";
  }
  if (d.experts_per_token != kMaxTopK) return "exactly 4 experts per token";
  if (d.num_experts > kMaxExperts) return "at most 256 experts";
  if (d.hidden % kTileK != 0 || d.intermediate % kTileK != 0 || d.q_dim() % kTileK != 0) {
    return "hidden, intermediate and the q width must be multiples of 64";
  }
  return {};
}

uint64_t prefill_scratch_bytes(const PrefillDims& d, int max_tokens) {
  uint64_t total = 0;
  visit_scratch(d, max_tokens, [&](const char*, size_t bytes) { total += align_up(bytes); });
  return total;
}

PrefillScratch carve_prefill_scratch(void* base, const PrefillDims& d, int max_tokens) {
  PrefillScratch s;
  s.max_tokens = max_tokens;
  auto* p = static_cast<std::byte*>(base);
  void* ptrs[14];
  int i = 0;
  visit_scratch(d, max_tokens, [&](const char*, size_t bytes) {
    ptrs[i++] = p;
    p += align_up(bytes);
  });
  s.tokens = static_cast<int32_t*>(ptrs[0]);
  s.x = static_cast<float*>(ptrs[1]);
  s.t = static_cast<uint16_t*>(ptrs[2]);
  s.t_experts = static_cast<uint16_t*>(ptrs[3]);
  s.qkv = static_cast<uint16_t*>(ptrs[4]);
  s.attn = static_cast<uint16_t*>(ptrs[5]);
  s.router = static_cast<float*>(ptrs[6]);
  s.expert_ids = static_cast<int32_t*>(ptrs[7]);
  s.expert_w = static_cast<float*>(ptrs[8]);
  s.slots = static_cast<int32_t*>(ptrs[9]);
  s.tiles = static_cast<int32_t*>(ptrs[10]);
  s.num_tiles = static_cast<int32_t*>(ptrs[11]);
  s.swiglu = static_cast<uint16_t*>(ptrs[12]);
  s.y = static_cast<float*>(ptrs[13]);
  return s;
}

void prefill_chunk(const PrefillDims& d, const PrefillModel& model, const PrefillScratch& s,
                   int count, int first_pos) {
  using namespace kernel;
  const int T = count, k = d.experts_per_token;
  const dim3 gemm_block(kGemmThreads);
  auto dense_grid = [&](int n_rows) {
    return dim3(unsigned((T + kTileM - 1) / kTileM), unsigned((n_rows + kTileN - 1) / kTileN));
  };
  const size_t row_smem = size_t(d.hidden) * sizeof(float);
  embed_rows_kernel<<<T, kRowThreads>>>(s.x, model.embed, s.tokens, d.hidden);
  gpu::check_launch("prefill: embedding rows");
  for (int layer = 0; layer < d.num_layers; ++layer) {
    const mk::LayerArgs& L = model.layers[layer];
    // Attention block.
    rmsnorm_rows_kernel<<<T, kRowThreads, row_smem>>>(s.t, nullptr, s.x, L.attn_norm, d.hidden,
                                                      d.rms_norm_eps);
    gpu::check_launch("prefill: attention rmsnorm");
    {
      const ProjectionEpi epi{s.y, L.qkv_scale, L.qkv_bias, 0, d.qkv_dim(), /*residual=*/false};
      if (L.qkv_scale) {
        const E4m3Rows w{static_cast<const uint8_t*>(L.qkv_weight), d.qkv_dim(), d.hidden};
        dense_gemm_kernel<<<dense_grid(d.qkv_dim()), gemm_block>>>(s.t, T, w, epi);
      } else {
        const Bf16Rows w{static_cast<const uint16_t*>(L.qkv_weight), d.qkv_dim(), d.hidden};
        dense_gemm_kernel<<<dense_grid(d.qkv_dim()), gemm_block>>>(s.t, T, w, epi);
      }
      gpu::check_launch("prefill: qkv GEMM");
    }
    const int64_t rope_items = int64_t(T) * (d.num_heads + 2 * d.num_kv_heads) * (kHeadDim / 2);
    rope_kernel<<<grid_1d(rope_items, 256), 256>>>(s.qkv, s.y, model.rope_table, T, first_pos,
                                                   d.num_heads, d.num_kv_heads);
    gpu::check_launch("prefill: RoPE");
    attention_kernel<<<dim3(unsigned((T + kAttnTokens - 1) / kAttnTokens), unsigned(d.num_kv_heads)),
                       kAttnTokens * 32>>>(s.attn, s.qkv, L, T, first_pos, d.num_heads,
                                           d.num_kv_heads, d.sliding_window);
    gpu::check_launch("prefill: attention");
    const int64_t kv_items = int64_t(T) * d.num_kv_heads * (kHeadDim / 8);
    kv_write_kernel<<<grid_1d(kv_items, 256), 256>>>(L, s.qkv, T, first_pos, d.num_heads,
                                                     d.num_kv_heads);
    gpu::check_launch("prefill: KV cache write");
    {
      const ProjectionEpi epi{s.x, L.out_scale, L.out_bias, 0, d.hidden, /*residual=*/true};
      if (L.out_scale) {
        const E4m3Rows w{static_cast<const uint8_t*>(L.out_weight), d.hidden, d.q_dim()};
        dense_gemm_kernel<<<dense_grid(d.hidden), gemm_block>>>(s.attn, T, w, epi);
      } else {
        const Bf16Rows w{static_cast<const uint16_t*>(L.out_weight), d.hidden, d.q_dim()};
        dense_gemm_kernel<<<dense_grid(d.hidden), gemm_block>>>(s.attn, T, w, epi);
      }
      gpu::check_launch("prefill: out_proj GEMM");
    }
    // MoE block.
    rmsnorm_rows_kernel<<<T, kRowThreads, row_smem>>>(s.t, model.experts_fp8 ? s.t_experts : nullptr,
                                                      s.x, L.mlp_norm, d.hidden, d.rms_norm_eps);
    gpu::check_launch("prefill: MLP rmsnorm");
    {
      const RouterEpi epi{s.router, L.router_bias, 0, d.num_experts};
      const Bf16Rows w{L.router_weight, d.num_experts, d.hidden};
      dense_gemm_kernel<<<dense_grid(d.num_experts), gemm_block>>>(s.t, T, w, epi);
      gpu::check_launch("prefill: router GEMM");
    }
    topk_kernel<<<(T + 7) / 8, 256>>>(s.expert_ids, s.expert_w, s.router, T, d.num_experts);
    gpu::check_launch("prefill: top-k");
    moe_group_kernel<<<1, 1024>>>(s.slots, s.tiles, s.num_tiles, s.expert_ids, T * k, d.num_experts);
    gpu::check_launch("prefill: expert grouping");
    const unsigned tiles = unsigned(max_moe_tiles(d, T));
    MoeArgs up{L.mlp1_blocks, L.mlp1_scales, L.mlp1_bias, 2 * d.intermediate, d.hidden,
               model.experts_fp8 ? s.t_experts : s.t, k, s.slots, s.tiles, s.num_tiles,
               /*up=*/true, s.swiglu, s.y, d.swiglu_limit};
    moe_gemm_kernel<<<dim3(tiles, unsigned((up.rows + kTileN - 1) / kTileN)), gemm_block>>>(up);
    gpu::check_launch("prefill: expert mlp1 GEMM");
    MoeArgs down{L.mlp2_blocks, L.mlp2_scales, L.mlp2_bias, d.hidden, d.intermediate,
                 s.swiglu, 1, s.slots, s.tiles, s.num_tiles,
                 /*up=*/false, s.swiglu, s.y, d.swiglu_limit};
    moe_gemm_kernel<<<dim3(tiles, unsigned((down.rows + kTileN - 1) / kTileN)), gemm_block>>>(down);
    gpu::check_launch("prefill: expert mlp2 GEMM");
    combine_kernel<<<grid_1d(int64_t(T) * d.hidden, 256), 256>>>(s.x, s.y, s.expert_w, T, d.hidden);
    gpu::check_launch("prefill: expert combine");
  }
}

}  // namespace gptoss::prefill
