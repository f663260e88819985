// gemm_tiles.cuh — the prefill GEMM: out[m][n] = sum_k A[m][k] W[n][k] for BF16 activation rows A
// and weight rows W in any of the engine's stored formats (BF16, E4M3 codes with per-row scales,
// MXFP4 blocks with E8M0 scales), each decoded to BF16 inside the kernel as its tile is staged in
// shared memory (every decode is exact, so only the FP32 summation order differs from the decode
// kernel's GEMVs). Tensor cores: mma.sync m16n8k16 BF16 with FP32 accumulation (emulated on HIP by
// platform.cuh). One CTA = kGemmThreads threads computes a kTileM x kTileN tile; rows of A come
// from a row map (dense: tokens; grouped MoE: the slots of one expert's tile). The epilogue
// receives pairs of adjacent columns (n even), so the SwiGLU's interleaved gate/up rows meet in
// one thread. Requires K % 32 == 0 and 16-byte aligned rows; M and N tails are handled (zeros).
#pragma once

#include "device_ops/numeric.cuh"
#include "device_ops/platform.cuh"

namespace gptoss::prefill::kernel {

constexpr int kTileM = 64;   // activation rows (tokens or expert slots) per CTA
constexpr int kTileN = 64;   // weight rows per CTA
constexpr int kTileK = 32;   // one MXFP4 block per weight row per stage
constexpr int kGemmThreads = 128;  // 2 x 2 warps, each 32 x 32 outputs
constexpr int kSmemStride = kTileK + 8;  // bf16 per staged row: 80 bytes, conflict-free fragments
static_assert(dev::kWarpSize == 32, "the MMA fragment layouts are for 32-lane warps");
static_assert(kTileK == dev::kMxfp4BlockElems, "one MX block per weight row per stage");

// ---- weight tile loaders: kTileN rows x kTileK columns of W into shared memory as BF16 ---------
// All kGemmThreads threads call load(); rows at or past `rows` are zero.
struct Bf16Rows {
  const uint16_t* w;  // [rows, k] bf16
  int rows, k;
  __device__ void load(uint16_t* ws, int n0, int k0) const {
    for (int i = int(threadIdx.x); i < kTileN * kTileK / 8; i += kGemmThreads) {
      const int r = i / (kTileK / 8), c = i % (kTileK / 8), n = n0 + r;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (n < rows) v = *reinterpret_cast<const uint4*>(w + size_t(n) * k + k0 + 8 * c);
      *reinterpret_cast<uint4*>(ws + r * kSmemStride + 8 * c) = v;
    }
  }
};

// E4M3 codes; the per-row scale is applied by the epilogue (E4M3 values are exact in BF16).
struct E4m3Rows {
  const uint8_t* w;  // [rows, k] e4m3
  int rows, k;
  __device__ void load(uint16_t* ws, int n0, int k0) const {
    for (int i = int(threadIdx.x); i < kTileN * kTileK / 16; i += kGemmThreads) {
      const int r = i / (kTileK / 16), c = i % (kTileK / 16), n = n0 + r;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (n < rows) v = *reinterpret_cast<const uint4*>(w + size_t(n) * k + k0 + 16 * c);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
      uint32_t out[8];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        out[2 * q] = dev::pack_bf16x2_rn(dev::e4m3_to_float(words[q] & 0xffu),
                                         dev::e4m3_to_float((words[q] >> 8) & 0xffu));
        out[2 * q + 1] = dev::pack_bf16x2_rn(dev::e4m3_to_float((words[q] >> 16) & 0xffu),
                                             dev::e4m3_to_float(words[q] >> 24));
      }
      uint4* dst = reinterpret_cast<uint4*>(ws + r * kSmemStride + 16 * c);
      dst[0] = make_uint4(out[0], out[1], out[2], out[3]);
      dst[1] = make_uint4(out[4], out[5], out[6], out[7]);
    }
  }
};

// One expert's MXFP4 matrix (low nibble = even element): e2m1 * 2^(s - 127), exact in BF16 for the
// scales real checkpoints use (as device_ops/gemv_mxfp4.cuh's decoder).
struct Mxfp4Rows {
  const uint8_t* blocks;  // [rows, k/32, 16]
  const uint8_t* scales;  // [rows, k/32]
  int rows, k;
  __device__ void load(uint16_t* ws, int n0, int k0) const {
    const int nb = k / dev::kMxfp4BlockElems, kb = k0 / dev::kMxfp4BlockElems;
    for (int i = int(threadIdx.x); i < kTileN * 2; i += kGemmThreads) {
      const int r = i / 2, half = i % 2, n = n0 + r;
      uint2 v = make_uint2(0, 0);
      float scale = 0.0f;
      if (n < rows) {
        const size_t blk = size_t(n) * nb + kb;
        v = *reinterpret_cast<const uint2*>(blocks + blk * dev::kMxfp4BlockBytes + 8 * half);
        scale = dev::e8m0_to_float(scales[blk]);
      }
      const uint32_t words[2] = {v.x, v.y};
      uint32_t out[8];
#pragma unroll
      for (int q = 0; q < 2; ++q) {
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const uint32_t byte = (words[q] >> (8 * p)) & 0xffu;
          out[4 * q + p] = dev::pack_bf16x2_rn(dev::e2m1_to_float(byte & 0xfu) * scale,
                                               dev::e2m1_to_float(byte >> 4) * scale);
        }
      }
      uint4* dst = reinterpret_cast<uint4*>(ws + r * kSmemStride + 16 * half);
      dst[0] = make_uint4(out[0], out[1], out[2], out[3]);
      dst[1] = make_uint4(out[4], out[5], out[6], out[7]);
    }
  }
};

// ---- the tile loop ---------------------------------------------------------------------------
// a_rows[m] (m < kTileM): the BF16 row of A for local row m, or nullptr (zeros). Returns the
// accumulators acc[i][j][r] of this warp's 2 x 4 MMA tiles (fragment layout of platform.cuh:
// r = 0,1: row gid, cols 2tig, 2tig+1; r = 2,3: row gid + 8). Block scope; syncs on exit.
template <class W>
__device__ void gemm_tile(float (&acc)[2][4][4], const uint16_t* const* a_rows, const W& w,
                          int n0, int k, uint16_t* as, uint16_t* ws) {
  const int lane = dev::lane_id(), warp = dev::warp_id(), gid = lane >> 2, tig = lane & 3;
  const int wm = warp / 2, wn = warp % 2;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += kTileK) {
    for (int i = int(threadIdx.x); i < kTileM * kTileK / 8; i += kGemmThreads) {
      const int m = i / (kTileK / 8), c = i % (kTileK / 8);
      const uint16_t* src = a_rows[m];
      const uint4 v = src ? *reinterpret_cast<const uint4*>(src + k0 + 8 * c) : make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(as + m * kSmemStride + 8 * c) = v;
    }
    w.load(ws, n0, k0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint16_t* base = as + (wm * 32 + i * 16 + gid) * kSmemStride + kk + 2 * tig;
        a[i][0] = *reinterpret_cast<const uint32_t*>(base);
        a[i][1] = *reinterpret_cast<const uint32_t*>(base + 8 * kSmemStride);
        a[i][2] = *reinterpret_cast<const uint32_t*>(base + 8);
        a[i][3] = *reinterpret_cast<const uint32_t*>(base + 8 * kSmemStride + 8);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint16_t* base = ws + (wn * 32 + j * 8 + gid) * kSmemStride + kk + 2 * tig;
        b[j][0] = *reinterpret_cast<const uint32_t*>(base);
        b[j][1] = *reinterpret_cast<const uint32_t*>(base + 8);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dev::mma_m16n8k16_bf16(acc[i][j], a[i], b[j]);
    }
    __syncthreads();
  }
}

// Calls epi(m_local, n, v0, v1) for every pair (n, n + 1) of this warp's outputs with m_local <
// m_count and n < n_rows (v1 is column n + 1, meaningful only when n + 1 < n_rows).
template <class Epi>
__device__ void gemm_epilogue(const float (&acc)[2][4][4], int n0, int m_count, int n_rows,
                              Epi& epi) {
  const int lane = dev::lane_id(), warp = dev::warp_id(), gid = lane >> 2, tig = lane & 3;
  const int wm = warp / 2, wn = warp % 2;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + wn * 32 + j * 8 + 2 * tig;
      if (n >= n_rows) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int m = wm * 32 + i * 16 + gid + 8 * h;
        if (m < m_count) epi(m, n, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
      }
    }
  }
}

}  // namespace gptoss::prefill::kernel
