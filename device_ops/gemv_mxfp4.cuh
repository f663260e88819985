// gemv_mxfp4.cuh — y = W x (+ b) for MXFP4 expert weights (blocks [rows, K/32, 16] e2m1, low
// nibble = even element; scales [rows, K/32] e8m0) on tensor cores (mma.sync; Hopper has no FP4
// instruction). Two activation paths, both FP32-accumulated:
//  - bf16: every weight is dequantized exactly to bf16 (e2m1 * 2^(s-127); exact for s <= 252),
//    m16n8k16 bf16 MMAs with the activations as B;
//  - fp8: activations as E4M3 codes with one E8M0 scale per 32 values (notes/fp8.md; quantized by
//    block_quantize_fp8 below), weights decoded exactly to E4M3 (e2m1 * 2^-6), one m16n8k32 MMA per
//    32-value block and both power-of-two scales applied to its FP32 result.
// A warp computes a 16-row tile; each lane loads one whole 32-value block (16 bytes) per row.
// Activations are staged once per CTA in shared memory in the fragment order (stage_* below).
// Tensor-core FP32 accumulation truncates instead of rounding (seen on an H100), hence the
// tolerance in tests/tolerances.h. K % 32 == 0 (whole MX blocks); row tails are handled.
#pragma once

#include "device_ops/numeric.cuh"
#include "device_ops/reduce.cuh"

namespace gptoss::dev {

inline constexpr int kMxfp4TileRows = 16;      // the MMA's M
inline constexpr int kMxfp4QuadLanes = 4;      // lanes sharing one row in the MMA fragments
inline constexpr int kMxfp4BlocksPerStep = 4;  // a quad's four lanes take four consecutive blocks
inline constexpr int kMxfp4BlocksPerTileStep = kMxfp4BlocksPerStep;
// Staged bf16 activations: one 32-value block is 64 bytes, padded to 80 so that the four lanes of
// a quad (reading four consecutive blocks) hit distinct shared-memory banks.
inline constexpr int kStagedBf16BlockBytes = 80;
inline constexpr int kStagedFp8BlockBytes = 32;
static_assert(kWarpSize == 32, "the MMA fragment layouts below are for 32-lane warps");

// An MXFP4 matrix: rows x (num_blocks * 32) values.
struct Mxfp4Matrix {
  const uint8_t* blocks;  // [rows, num_blocks, 16] e2m1 pairs, 16-byte aligned
  const uint8_t* scales;  // [rows, num_blocks] e8m0
  int rows;
  int num_blocks;  // K / 32
};

// Shared-memory bytes of staged activations for K values (num_blocks + 1 blocks: the last one is
// zero and is what idle lanes read).
__host__ __device__ constexpr int staged_bf16_bytes(int k) {
  return (k / kMxfp4BlockElems + 1) * kStagedBf16BlockBytes;
}
__host__ __device__ constexpr int staged_fp8_bytes(int k) {
  return (k / kMxfp4BlockElems + 1) * (kStagedFp8BlockBytes + int(sizeof(float)));
}

// ---- staging (block scope; all threads call; ends with __syncthreads()) --------------------------
// bf16 path: within each group of 8 values the order is 0,4,1,5,2,6,3,7, so that MMA j of a block
// reads its B fragment (x[8q+p], x[8q+p+4], x[8q+p+1], x[8q+p+5]) with q = j/2, p = 2(j%2) as 8
// consecutive bytes at offset 8j. x: K floats or bf16 values (already bf16-representable).
template <class T>
__device__ void stage_mxfp4_activations_bf16(uint8_t* staged, const T* x, int k) {
  const int nb = k / kMxfp4BlockElems;
  for (int i = int(threadIdx.x); i < (nb + 1) * kMxfp4BlockElems; i += int(blockDim.x)) {
    const int b = i / kMxfp4BlockElems, pos = i % kMxfp4BlockElems;
    const int src = (pos & ~7) + ((pos & 7) >> 1) + 4 * (pos & 1);
    float v = 0.0f;
    if (b < nb) {
      if constexpr (std::is_same_v<T, bf16>) {
        v = bf16_to_float(x[b * kMxfp4BlockElems + src]);
      } else {
        v = x[b * kMxfp4BlockElems + src];
      }
    }
    *reinterpret_cast<bf16*>(staged + b * kStagedBf16BlockBytes + 2 * pos) = float_to_bf16(v);
  }
  __syncthreads();
}

// fp8 path: per block 32 code bytes, word i (8 bytes) = codes of values 8i+0,2,4,6 then 8i+1,3,5,7
// (matching the even/odd e4m3 registers of the weight decoder), then after all blocks one float
// per block: 2^(scale - 127) * 2^6 (the 2^6 undoes the decoder's 2^-6). Scale bytes must be at most
// 248 (block_quantize_fp8 produces at most 246).
__device__ inline void stage_mxfp4_activations_fp8(uint8_t* staged, const uint8_t* codes,
                                                   const uint8_t* scales, int k) {
  const int nb = k / kMxfp4BlockElems;
  float* factors = reinterpret_cast<float*>(staged + (nb + 1) * kStagedFp8BlockBytes);
  for (int i = int(threadIdx.x); i < (nb + 1) * kMxfp4BlockElems; i += int(blockDim.x)) {
    const int b = i / kMxfp4BlockElems, pos = i % kMxfp4BlockElems;
    const int word = pos >> 3, j = pos & 7;
    const int src = 8 * word + (j < 4 ? 2 * j : 2 * (j - 4) + 1);
    staged[i] = b < nb ? codes[b * kMxfp4BlockElems + src] : 0;
  }
  for (int b = int(threadIdx.x); b <= nb; b += int(blockDim.x)) {
    factors[b] = b < nb ? ldexpf(1.0f, int(scales[b]) - 127 - kE2m1ToE4m3Exponent) : 0.0f;
  }
  __syncthreads();
}

// ---- FP8 quantization of the expert input (notes/fp8.md) ----------------------------------------
// Block scope: codes[K] (E4M3) and scales[K/32] (E8M0 bytes) from x[K] (floats or bf16, values
// already bf16-representable). One warp per 32-value block. Bit-exact with the host rule.
// No shared memory; no __syncthreads() (callers synchronize before reading the outputs).
template <class T>
__device__ void block_quantize_fp8(uint8_t* codes, uint8_t* scales, const T* x, int k) {
  const int nb = k / kMxfp4BlockElems;
  for (int b = warp_id(); b < nb; b += num_warps()) {
    const int i = b * kMxfp4BlockElems + lane_id();
    float v;
    if constexpr (std::is_same_v<T, bf16>) {
      v = bf16_to_float(x[i]);
    } else {
      v = x[i];
    }
    const float amax = warp_max(fabsf(v));
    uint32_t code = 0, scale = 0;
    if (amax > 0.0f) {
      const int e = fp8_block_exponent(amax);
      code = float_to_e4m3(v * exp2_neg_int(e));  // exact product: a power-of-two scaling
      scale = uint32_t(e + 127);
    }
    codes[i] = uint8_t(code);
    if (lane_id() == 0) scales[b] = uint8_t(scale);
  }
}

namespace detail {
__device__ __forceinline__ uint32_t word_of(const uint4& v, int q) {
  return q == 0 ? v.x : (q == 1 ? v.y : (q == 2 ? v.z : v.w));
}
template <int P>
__device__ __forceinline__ void decode_pair_bf16(uint32_t (&out)[4][4], const uint4& v,
                                                 uint32_t mult, bool single) {
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const uint32_t d = e2m1_pair_to_bf16x2_scaled<P>(word_of(v, q));
    out[q][P] = single ? mul_bf16x2(d, mult) : mul_bf16x2(mul_bf16x2(d, kBf16x2TwoPow126), mult);
  }
}
// All 16 pairs of one row's block, dequantized to bf16x2: out[q][p] = (element 8q+p, 8q+p+4).
__device__ __forceinline__ void decode_block_bf16(uint32_t (&out)[4][4], const uint4& v, uint32_t s,
                                                  bool single) {
  const uint32_t mult = single ? mxfp4_single_multiplier_bf16x2(s) : e8m0_to_bf16x2(s);
  decode_pair_bf16<0>(out, v, mult, single);
  decode_pair_bf16<1>(out, v, mult, single);
  decode_pair_bf16<2>(out, v, mult, single);
  decode_pair_bf16<3>(out, v, mult, single);
}
}  // namespace detail

// ---- warp scope: one 16-row tile over blocks [kb_begin, kb_end) ---------------------------------
// bf16 path. acc[0] = row row0 + lane/4, acc[1] = row row0 + lane/4 + 8 (every lane of a quad holds
// its rows' sums); rows at or past w.rows are not read and their sums are zero. staged = the output
// of stage_mxfp4_activations_bf16 for K = w.num_blocks * 32. Each lane keeps kUnroll * 2 16-byte
// loads in flight. No synchronization.
template <int kUnroll>
__device__ __forceinline__ void warp_gemv_mxfp4_bf16(float (&acc)[2], const Mxfp4Matrix& w,
                                                     const uint8_t* __restrict__ staged, int row0,
                                                     int kb_begin, int kb_end) {
  const int lane = lane_id(), gid = lane >> 2, tig = lane & 3;
  const int row_a = row0 + gid, row_b = row0 + gid + 8;
  const bool ok_a = row_a < w.rows, ok_b = row_b < w.rows;
  const uint8_t* blocks_a = w.blocks + int64_t(ok_a ? row_a : 0) * w.num_blocks * kMxfp4BlockBytes;
  const uint8_t* blocks_b = w.blocks + int64_t(ok_b ? row_b : 0) * w.num_blocks * kMxfp4BlockBytes;
  const uint8_t* scales_a = w.scales + int64_t(ok_a ? row_a : 0) * w.num_blocks;
  const uint8_t* scales_b = w.scales + int64_t(ok_b ? row_b : 0) * w.num_blocks;
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  constexpr int kStride = kMxfp4BlocksPerStep * kUnroll;
  for (int kb0 = kb_begin; kb0 < kb_end; kb0 += kStride) {
    uint4 wa[kUnroll], wb[kUnroll];
    uint32_t sa[kUnroll], sb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int kb = kb0 + u * kMxfp4BlocksPerStep + tig;
      const bool in = kb < kb_end;
      // Idle lanes decode zeros with a finite multiplier (scale 127): their products are 0.
      wa[u] = in && ok_a ? load_stream_16B(blocks_a + kb * kMxfp4BlockBytes) : make_uint4(0, 0, 0, 0);
      wb[u] = in && ok_b ? load_stream_16B(blocks_b + kb * kMxfp4BlockBytes) : make_uint4(0, 0, 0, 0);
      sa[u] = in && ok_a ? load_readonly_u8(scales_a + kb) : 127u;
      sb[u] = in && ok_b ? load_readonly_u8(scales_b + kb) : 127u;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (kb0 + u * kMxfp4BlocksPerStep >= kb_end) break;  // warp-uniform
      const int kb = kb0 + u * kMxfp4BlocksPerStep + tig;
      const uint8_t* bsrc = staged + (kb < kb_end ? kb : w.num_blocks) * kStagedBf16BlockBytes;
      uint4 bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) bv[i] = *reinterpret_cast<const uint4*>(bsrc + 16 * i);
      // One bf16 multiply per pair when every scale of this step is <= 128 (real checkpoints),
      // two otherwise; both exact.
      const bool single = warp_all(sa[u] <= kMxfp4SingleMultiplyMaxScale &&
                                   sb[u] <= kMxfp4SingleMultiplyMaxScale);
      uint32_t da[4][4], db[4][4];
      detail::decode_block_bf16(da, wa[u], sa[u], single);
      detail::decode_block_bf16(db, wb[u], sb[u], single);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int q = j >> 1, p = 2 * (j & 1);
        const uint32_t a[4] = {da[q][p], db[q][p], da[q][p + 1], db[q][p + 1]};
        const uint4& bq = bv[q];
        const uint32_t b[2] = {(j & 1) ? bq.z : bq.x, (j & 1) ? bq.w : bq.y};
        mma_m16n8k16_bf16(d, a, b);
      }
    }
  }
  acc[0] = d[0];  // B is the same in all 8 columns, so every column holds the row sums
  acc[1] = d[2];
}

// fp8 path. Same contract; staged = stage_mxfp4_activations_fp8 output. Per step the quad's four
// lanes hold four blocks of each row; MMA i multiplies word i of every lane's block, and B column n
// is non-zero only in lane n's k-slots, so column n of the result is block kb0 + n alone and can be
// scaled by that block's two scales after the four MMAs.
template <int kUnroll>
__device__ __forceinline__ void warp_gemv_mxfp4_fp8(float (&acc)[2], const Mxfp4Matrix& w,
                                                    const uint8_t* __restrict__ staged, int row0,
                                                    int kb_begin, int kb_end) {
  const int lane = lane_id(), gid = lane >> 2, tig = lane & 3;
  const int row_a = row0 + gid, row_b = row0 + gid + 8;
  const bool ok_a = row_a < w.rows, ok_b = row_b < w.rows;
  const uint8_t* blocks_a = w.blocks + int64_t(ok_a ? row_a : 0) * w.num_blocks * kMxfp4BlockBytes;
  const uint8_t* blocks_b = w.blocks + int64_t(ok_b ? row_b : 0) * w.num_blocks * kMxfp4BlockBytes;
  const uint8_t* scales_a = w.scales + int64_t(ok_a ? row_a : 0) * w.num_blocks;
  const uint8_t* scales_b = w.scales + int64_t(ok_b ? row_b : 0) * w.num_blocks;
  const float* factors =
      reinterpret_cast<const float*>(staged + (w.num_blocks + 1) * kStagedFp8BlockBytes);
  const bool diag = gid == tig;  // the lane whose k-slots feed B column gid
  float acc_a = 0.0f, acc_b = 0.0f;
  constexpr int kStride = kMxfp4BlocksPerStep * kUnroll;
  for (int kb0 = kb_begin; kb0 < kb_end; kb0 += kStride) {
    uint4 wa[kUnroll], wb[kUnroll];
    uint32_t sab[kUnroll];  // this lane's block scales: row a in bits 0-7, row b in bits 8-15
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int kb = kb0 + u * kMxfp4BlocksPerStep + tig;
      const bool in = kb < kb_end;
      wa[u] = in && ok_a ? load_stream_16B(blocks_a + kb * kMxfp4BlockBytes) : make_uint4(0, 0, 0, 0);
      wb[u] = in && ok_b ? load_stream_16B(blocks_b + kb * kMxfp4BlockBytes) : make_uint4(0, 0, 0, 0);
      sab[u] = (in && ok_a ? load_readonly_u8(scales_a + kb) : 0u) |
               ((in && ok_b ? load_readonly_u8(scales_b + kb) : 0u) << 8);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int step0 = kb0 + u * kMxfp4BlocksPerStep;
      if (step0 >= kb_end) break;  // warp-uniform
      // The scales of blocks step0 + 2tig + c were loaded by lane (gid, 2tig + c) of the quad.
      const uint32_t sab_c[2] = {shfl(sab[u], (lane & ~3) | ((2 * tig) & 3)),
                                 shfl(sab[u], (lane & ~3) | ((2 * tig + 1) & 3))};
      const int kb = step0 + tig;
      const uint8_t* bsrc =
          staged + (diag && kb < kb_end ? kb : w.num_blocks) * kStagedFp8BlockBytes;
      const uint4 b01 = *reinterpret_cast<const uint4*>(bsrc);
      const uint4 b23 = *reinterpret_cast<const uint4*>(bsrc + 16);
      float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t a[4];
        e2m1x8_to_e4m3x8_scaled(detail::word_of(wa[u], i), a[0], a[2]);
        e2m1x8_to_e4m3x8_scaled(detail::word_of(wb[u], i), a[1], a[3]);
        const uint4& bw = i < 2 ? b01 : b23;
        const uint32_t b[2] = {(i & 1) ? bw.z : bw.x, (i & 1) ? bw.w : bw.y};
        mma_m16n8k32_e4m3(d, a, b);
      }
      // Lane (gid, tig < 2) holds blocks step0 + 2tig and step0 + 2tig + 1 of rows a and b.
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int blk = step0 + 2 * tig + c;
        const bool live = tig < 2 && blk < kb_end;
        const float fa = live ? factors[blk] : 0.0f;
        const float fwa = live && ok_a ? e8m0_to_float(sab_c[c] & 0xffu) : 0.0f;
        const float fwb = live && ok_b ? e8m0_to_float(sab_c[c] >> 8) : 0.0f;
        acc_a = fmaf(d[c] * fa, fwa, acc_a);
        acc_b = fmaf(d[2 + c] * fa, fwb, acc_b);
      }
    }
  }
  acc_a += shfl_xor(acc_a, 1);
  acc_a += shfl_xor(acc_a, 2);
  acc_b += shfl_xor(acc_b, 1);
  acc_b += shfl_xor(acc_b, 2);
  acc[0] = acc_a;
  acc[1] = acc_b;
}

enum class Mxfp4Activations { kBf16, kFp8 };

// Block scope: y[row] for rows [row_begin, row_end) of w. Warps form groups of kSplitK; a group
// computes one 16-row tile per pass, each warp a 1/kSplitK share of the K steps. For each row one
// thread calls epi(row, value), value = (W x)[row] + bias[row] (bias may be nullptr).
// Contract: all threads call; blockDim.x % (kWarpSize * kSplitK) == 0; staged activations complete
// on entry; red = kMaxWarpsPerBlock * 16 floats of shared memory (unused when kSplitK == 1).
// No __syncthreads() on entry; with kSplitK > 1 two per pass, the last one before returning.
template <Mxfp4Activations kAct, int kSplitK, int kUnroll, class Epilogue>
__device__ void block_gemv_mxfp4(const Mxfp4Matrix& w, const bf16* __restrict__ bias,
                                 const uint8_t* __restrict__ staged, int row_begin, int row_end,
                                 float* red, Epilogue&& epi) {
  const int warp = warp_id(), lane = lane_id();
  const int groups = num_warps() / kSplitK;
  const int group = warp / kSplitK, split = warp % kSplitK;
  const int num_steps = (w.num_blocks + kMxfp4BlocksPerStep - 1) / kMxfp4BlocksPerStep;
  const int kb_begin = num_steps * split / kSplitK * kMxfp4BlocksPerStep;
  const int kb_end = min(w.num_blocks, num_steps * (split + 1) / kSplitK * kMxfp4BlocksPerStep);
  const int num_tiles = (row_end - row_begin + kMxfp4TileRows - 1) / kMxfp4TileRows;
  const int num_passes = (num_tiles + groups - 1) / groups;
  const int gid = lane >> 2, tig = lane & 3;
  for (int pass = 0; pass < num_passes; ++pass) {
    const int tile = pass * groups + group;
    const int row0 = row_begin + tile * kMxfp4TileRows;
    float acc[2] = {0.0f, 0.0f};
    if (tile < num_tiles) {
      // Rows past row_end but inside w are computed and dropped; rows past w.rows are not read.
      if constexpr (kAct == Mxfp4Activations::kBf16) {
        warp_gemv_mxfp4_bf16<kUnroll>(acc, w, staged, row0, kb_begin, kb_end);
      } else {
        warp_gemv_mxfp4_fp8<kUnroll>(acc, w, staged, row0, kb_begin, kb_end);
      }
    }
    if constexpr (kSplitK == 1) {
      if (tile < num_tiles && tig == 0) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = row0 + gid + 8 * h;
          if (row < row_end) epi(row, acc[h] + (bias ? bf16_to_float(bias[row]) : 0.0f));
        }
      }
    } else {
      if (tile < num_tiles && tig == 0) {
        red[warp * kMxfp4TileRows + gid] = acc[0];
        red[warp * kMxfp4TileRows + gid + 8] = acc[1];
      }
      __syncthreads();
      const int t = int(threadIdx.x);
      if (t < groups * kMxfp4TileRows) {
        const int g = t / kMxfp4TileRows, r = t % kMxfp4TileRows;
        const int row = row_begin + (pass * groups + g) * kMxfp4TileRows + r;
        if (row < row_end) {
          float v = 0.0f;
          for (int s = 0; s < kSplitK; ++s) v += red[(g * kSplitK + s) * kMxfp4TileRows + r];
          epi(row, v + (bias ? bf16_to_float(bias[row]) : 0.0f));
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace gptoss::dev
