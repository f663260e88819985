// gemv_bf16.cuh — y = W x (+ b) for BF16 weights W [rows, K] row-major, activations x as floats
// in shared memory, FP32 accumulation on CUDA cores (the GEMV is bandwidth-bound: 2 bytes per
// multiply-add). warp_gemv_bf16 is warp scope (kRows rows over a K range, every lane gets the
// sums); block_gemv_bf16 is block scope over a row range with K split over warps and an epilogue.
// Alignment: W and x 16-byte aligned, K % 8 == 0 and K ranges starting at multiples of 8 (one
// 16-byte load = 8 weights); row tails are handled, rows past the range are never read.
#pragma once

#include "device_ops/numeric.cuh"
#include "device_ops/reduce.cuh"

namespace gptoss::dev {

inline constexpr int kBf16PerLoad = 8;                          // one 16-byte load
inline constexpr int kGemvBf16WarpStep = kWarpSize * kBf16PerLoad;  // K elements per warp step

// Warp scope. acc[r] = sum_{k in [k_begin, k_end)} W[row0 + r][k] * x[k] for r < num_rows
// (rows at or past num_rows read row num_rows - 1 and their sums are meaningless). Each lane keeps
// kUnroll * kRows 16-byte loads in flight. No shared memory besides x; no synchronization.
template <int kRows, int kUnroll>
__device__ __forceinline__ void warp_gemv_bf16(float (&acc)[kRows], const bf16* __restrict__ w,
                                               int64_t ldw, const float* __restrict__ x, int row0,
                                               int num_rows, int k_begin, int k_end) {
  static_assert(kRows >= 1 && kRows <= 8 && kUnroll >= 1 && kUnroll <= 8, "register budget");
  const int lane = lane_id();
  const bf16* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = row0 + r < num_rows ? row0 + r : num_rows - 1;
    rows[r] = w + int64_t(row) * ldw;
  }
  float part[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) part[r] = 0.0f;

  for (int k0 = k_begin + lane * kBf16PerLoad; k0 < k_end; k0 += kGemvBf16WarpStep * kUnroll) {
    uint4 wv[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int k = k0 + u * kGemvBf16WarpStep;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        wv[u][r] = k < k_end ? load_stream_16B(rows[r] + k) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int k = k0 + u * kGemvBf16WarpStep;
      if (k < k_end) {
        const float4 xa = *reinterpret_cast<const float4*>(x + k);
        const float4 xb = *reinterpret_cast<const float4*>(x + k + 4);
        const float xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          float wf[8];
          bf16x8_to_float(wv[u][r], wf);
#pragma unroll
          for (int i = 0; i < 8; ++i) part[r] = fmaf(wf[i], xs[i], part[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = warp_sum(part[r]);
}

// Block scope: y[row] for rows [row_begin, row_end) of W [*, K]. Warps form groups of kSplitK;
// a group computes kRows rows per pass, each of its warps 1/kSplitK of K. For each row, one thread
// calls epi(row, value) with value = (W x)[row] + bias[row] (bias may be nullptr).
// Contract: all threads call; blockDim.x % (kWarpSize * kSplitK) == 0; x (K floats, shared memory)
// is complete on entry; red = kMaxWarpsPerBlock * kRows floats of shared memory (unused when
// kSplitK == 1). No __syncthreads() on entry; with kSplitK > 1 two per pass, the last one before
// returning (red and x may then be reused); with kSplitK == 1 none.
template <int kRows, int kSplitK, int kUnroll, class Epilogue>
__device__ void block_gemv_bf16(const bf16* __restrict__ w, int64_t ldw, const bf16* __restrict__ bias,
                                const float* __restrict__ x, int K, int row_begin, int row_end,
                                float* red, Epilogue&& epi) {
  const int warp = warp_id(), lane = lane_id();
  const int groups = num_warps() / kSplitK;
  const int group = warp / kSplitK, split = warp % kSplitK;
  const int k_slice = (K / kBf16PerLoad + kSplitK - 1) / kSplitK * kBf16PerLoad;
  const int k_begin = split * k_slice;
  const int k_end = min(K, k_begin + k_slice);
  const int num_tiles = (row_end - row_begin + kRows - 1) / kRows;
  const int num_passes = (num_tiles + groups - 1) / groups;
  for (int pass = 0; pass < num_passes; ++pass) {
    const int tile = pass * groups + group;
    const int row0 = row_begin + tile * kRows;
    float acc[kRows];
    if (tile < num_tiles) {
      warp_gemv_bf16<kRows, kUnroll>(acc, w, ldw, x, row0, row_end, k_begin, k_end);
    }
    if constexpr (kSplitK == 1) {
      if (tile < num_tiles) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (lane == r && row0 + r < row_end) {
            epi(row0 + r, acc[r] + (bias ? bf16_to_float(bias[row0 + r]) : 0.0f));
          }
        }
      }
    } else {
      if (lane == 0 && tile < num_tiles) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) red[warp * kRows + r] = acc[r];
      }
      __syncthreads();
      const int t = int(threadIdx.x);
      if (t < groups * kRows) {
        const int g = t / kRows, r = t % kRows;
        const int row = row_begin + (pass * groups + g) * kRows + r;
        if (row < row_end) {
          float v = 0.0f;
          for (int s = 0; s < kSplitK; ++s) v += red[(g * kSplitK + s) * kRows + r];
          epi(row, v + (bias ? bf16_to_float(bias[row]) : 0.0f));
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace gptoss::dev
