// gemm_tiles.cuh — the prefill GEMM: out[m][n] = sum_k A[m][k] W[n][k] for BF16 activation rows A
// and weight rows W in any of the engine's stored formats (BF16, E4M3 codes with per-row scales,
// MXFP4 blocks with E8M0 scales), each decoded to BF16 inside the kernel as its tile is staged in
// shared memory (every decode is exact, so only the FP32 summation order differs from the decode
// kernel's GEMVs). Tensor cores: mma.sync m16n8k16 BF16 with FP32 accumulation (emulated on HIP by
// platform.cuh). One CTA = kGemmThreads threads computes a kTileM x kTileN tile; rows of A come
// from a row map (dense: tokens; grouped MoE: the slots of one expert's tile). The epilogue
// receives pairs of adjacent columns (n even), so the SwiGLU's interleaved gate/up rows meet in
// one thread. Requires K % 64 == 0 and 16-byte aligned rows; M and N tails are handled (zeros).
#pragma once

#include "device_ops/gemv_mxfp4.cuh"  // detail::decode_block_bf16, the decode kernel's MXFP4 decoder
#include "device_ops/numeric.cuh"
#include "device_ops/platform.cuh"

namespace gptoss::prefill::kernel {

constexpr int kTileM = 64;   // activation rows (tokens or expert slots) per CTA
constexpr int kTileN = 64;   // weight rows per CTA
constexpr int kTileK = 64;   // K per pipeline stage: two MXFP4 blocks per weight row
constexpr int kGemmThreads = 128;  // 2 x 2 warps, each 32 x 32 outputs
constexpr int kSmemStride = kTileK + 8;  // bf16 per staged row: 144 bytes, conflict-free fragments
constexpr int kStageElems = kTileM * kSmemStride;  // one stage of A (and of W: kTileN == kTileM)
static_assert(kTileM == kTileN, "A and W stages share one size");
static_assert(dev::kWarpSize == 32, "the MMA fragment layouts are for 32-lane warps");
static_assert(kTileK % dev::kMxfp4BlockElems == 0, "whole MX blocks per weight row per stage");

// ---- weight tile loaders: kTileN rows x kTileK columns of W into shared memory as BF16 ---------
// Two halves so that a stage's global loads are in flight while the previous stage is multiplied:
// fetch() loads this thread's share into registers (Regs), store() decodes it into shared memory.
// All kGemmThreads threads call both; rows at or past `rows` are zero.

// This thread's kLoads 16-byte chunks of a stage (kChunks per row, row-major over the stage's
// kTileN rows) from rows of row_bytes bytes, starting at byte col0 of each row.
template <int kChunks, int kLoads>
__device__ __forceinline__ void fetch_chunks(uint4 (&v)[kLoads], const uint8_t* w, size_t row_bytes,
                                             int rows, int n0, size_t col0) {
#pragma unroll
  for (int l = 0; l < kLoads; ++l) {
    const int i = int(threadIdx.x) + l * kGemmThreads, n = n0 + i / kChunks;
    v[l] = n < rows ? *reinterpret_cast<const uint4*>(w + size_t(n) * row_bytes + col0 + 16 * (i % kChunks))
                    : make_uint4(0, 0, 0, 0);
  }
}

// kPairedK: the loader stores each aligned group of 8 K positions in the order 0,4,1,5,2,6,3,7 (how
// the fast MXFP4 decode produces them); gemm_tile then stores A in the same order, so the products
// pair up as before (only the MMA's internal summation order changes).
struct Bf16Rows {
  const uint16_t* w;  // [rows, k] bf16
  int rows, k;
  static constexpr bool kPairedK = false;
  static constexpr int kChunks = kTileK / 8;  // 16-byte chunks per row and stage
  static constexpr int kLoads = kTileN * kChunks / kGemmThreads;
  struct Regs {
    uint4 v[kLoads];
  };
  __device__ void fetch(Regs& r, int n0, int k0) const {
    fetch_chunks<kChunks, kLoads>(r.v, reinterpret_cast<const uint8_t*>(w), size_t(k) * 2, rows, n0,
                                  size_t(k0) * 2);
  }
  __device__ void store(uint16_t* ws, const Regs& r) const {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads;
      *reinterpret_cast<uint4*>(ws + (i / kChunks) * kSmemStride + 8 * (i % kChunks)) = r.v[l];
    }
  }
};

// E4M3 codes; the per-row scale is applied by the epilogue (E4M3 values are exact in BF16).
struct E4m3Rows {
  const uint8_t* w;  // [rows, k] e4m3
  int rows, k;
  static constexpr bool kPairedK = false;
  static constexpr int kChunks = kTileK / 16;  // 16 codes per load
  static constexpr int kLoads = kTileN * kChunks / kGemmThreads;
  struct Regs {
    uint4 v[kLoads];
  };
  __device__ void fetch(Regs& r, int n0, int k0) const {
    fetch_chunks<kChunks, kLoads>(r.v, w, size_t(k), rows, n0, size_t(k0));
  }
  __device__ void store(uint16_t* ws, const Regs& r) const {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads;
      const uint32_t words[4] = {r.v[l].x, r.v[l].y, r.v[l].z, r.v[l].w};
      uint32_t out[8];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        out[2 * q] = dev::pack_bf16x2_rn(dev::e4m3_to_float(words[q] & 0xffu),
                                         dev::e4m3_to_float((words[q] >> 8) & 0xffu));
        out[2 * q + 1] = dev::pack_bf16x2_rn(dev::e4m3_to_float((words[q] >> 16) & 0xffu),
                                             dev::e4m3_to_float(words[q] >> 24));
      }
      uint4* dst = reinterpret_cast<uint4*>(ws + (i / kChunks) * kSmemStride + 16 * (i % kChunks));
      dst[0] = make_uint4(out[0], out[1], out[2], out[3]);
      dst[1] = make_uint4(out[4], out[5], out[6], out[7]);
    }
  }
};

// One expert's MXFP4 matrix (nibble i of a 32-bit word = element i): e2m1 * 2^(s - 127), exact in
// BF16 (device_ops/gemv_mxfp4.cuh's decoder: the code's bits moved into a bf16 of value
// e2m1 * 2^-126, then one bf16 multiply by 2^(s - 1), or two when s > 128). A thread takes one
// block; pairs come out as elements (P, P + 4) of each word, hence kPairedK.
struct Mxfp4Rows {
  const uint8_t* blocks;  // [rows, k/32, 16]
  const uint8_t* scales;  // [rows, k/32]
  int rows, k;
  static constexpr bool kPairedK = true;
  static constexpr int kBlocks = kTileK / dev::kMxfp4BlockElems;  // per row and stage
  static constexpr int kLoads = kTileN * kBlocks / kGemmThreads;
  static_assert(kLoads * kGemmThreads == kTileN * kBlocks, "whole blocks per thread");
  struct Regs {
    uint4 v[kLoads];
    uint32_t s[kLoads];
  };
  __device__ void fetch(Regs& r, int n0, int k0) const {
    const int nb = k / dev::kMxfp4BlockElems, kb = k0 / dev::kMxfp4BlockElems;
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads, n = n0 + i / kBlocks;
      const size_t blk = size_t(n) * nb + kb + i % kBlocks;
      r.v[l] = n < rows ? *reinterpret_cast<const uint4*>(blocks + blk * dev::kMxfp4BlockBytes)
                        : make_uint4(0, 0, 0, 0);
      r.s[l] = n < rows ? scales[blk] : 0u;
    }
  }
  __device__ void store(uint16_t* ws, const Regs& r) const {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads;
      const uint32_t s = r.s[l];  // rows past the end: zero blocks, scale byte 0 (finite)
      uint32_t out[4][4];  // out[q][p] = elements (8q + p, 8q + p + 4)
      dev::detail::decode_block_bf16(out, r.v[l], s, s <= dev::kMxfp4SingleMultiplyMaxScale);
      uint4* dst = reinterpret_cast<uint4*>(ws + (i / kBlocks) * kSmemStride +
                                            dev::kMxfp4BlockElems * (i % kBlocks));
#pragma unroll
      for (int q = 0; q < 4; ++q) dst[q] = make_uint4(out[q][0], out[q][1], out[q][2], out[q][3]);
    }
  }
};

// Fragment loads from a staged tile (row stride kSmemStride): ldmatrix on NVIDIA, four 32-bit
// shared-memory reads per matrix on AMD (no ldmatrix there). A: the 16 x 16 tile at `base` (rows
// m, columns k) as a[0..3]; B: two 8-row tiles at `base` (rows n, 16 columns k) as b0[0..1], b1[0..1].
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const uint16_t* base) {
  const int lane = dev::lane_id();
#if defined(__HIPCC__)
  const uint16_t* p = base + (lane >> 2) * kSmemStride + 2 * (lane & 3);
  a[0] = *reinterpret_cast<const uint32_t*>(p);
  a[1] = *reinterpret_cast<const uint32_t*>(p + 8 * kSmemStride);
  a[2] = *reinterpret_cast<const uint32_t*>(p + 8);
  a[3] = *reinterpret_cast<const uint32_t*>(p + 8 * kSmemStride + 8);
#else
  // Lane l addresses row l % 16, columns 8 (l / 16) ...: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15).
  const uint16_t* p = base + (lane & 15) * kSmemStride + 8 * (lane >> 4);
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(addr));
#endif
}
__device__ __forceinline__ void load_b_fragments(uint32_t (&b0)[2], uint32_t (&b1)[2], const uint16_t* base) {
  const int lane = dev::lane_id();
#if defined(__HIPCC__)
  const uint16_t* p = base + (lane >> 2) * kSmemStride + 2 * (lane & 3);
  b0[0] = *reinterpret_cast<const uint32_t*>(p);
  b0[1] = *reinterpret_cast<const uint32_t*>(p + 8);
  b1[0] = *reinterpret_cast<const uint32_t*>(p + 8 * kSmemStride);
  b1[1] = *reinterpret_cast<const uint32_t*>(p + 8 * kSmemStride + 8);
#else
  // Lane l addresses row 8 (l / 16) + l % 8, columns 8 ((l / 8) % 2): matrices (n 0-7, k 0-7),
  // (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
  const uint16_t* p = base + (8 * (lane >> 4) + (lane & 7)) * kSmemStride + 8 * ((lane >> 3) & 1);
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(b0[0]), "=r"(b0[1]), "=r"(b1[0]), "=r"(b1[1])
               : "r"(addr));
#endif
}

// ---- the tile loop ---------------------------------------------------------------------------
// A warp's 2 x 4 MMA accumulator tiles set to zero.
__device__ __forceinline__ void clear_warp_tile(float (&t)[2][4][4]) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) t[i][j][r] = 0.0f;
}

// a_rows[m] (m < kTileM): the BF16 row of A for local row m, or nullptr (zeros). Returns the
// accumulators acc[i][j][r] of this warp's 2 x 4 MMA tiles (fragment layout of platform.cuh:
// r = 0,1: row gid, cols 2tig, 2tig+1; r = 2,3: row gid + 8). as and ws: two stages each
// (2 * kStageElems bf16). Two-stage pipeline: stage s + 1's global loads are issued before stage
// s is multiplied and land in the other buffer after it, one CTA barrier per stage. Block scope;
// syncs on exit.
template <class W>
__device__ void gemm_tile(float (&acc)[2][4][4], const uint16_t* const* a_rows, const W& w,
                          int n0, int k, uint16_t* as, uint16_t* ws) {
  const int warp = dev::warp_id();
  const int wm = warp / 2, wn = warp % 2;
  constexpr int kAChunks = kTileK / 8, kALoads = kTileM * kAChunks / kGemmThreads;
  auto fetch_a = [&](uint4 (&r)[kALoads], int k0) {
#pragma unroll
    for (int l = 0; l < kALoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads;
      const uint16_t* src = a_rows[i / kAChunks];
      r[l] = src ? *reinterpret_cast<const uint4*>(src + k0 + 8 * (i % kAChunks)) : make_uint4(0, 0, 0, 0);
    }
  };
  auto store_a = [&](uint16_t* dst, const uint4 (&r)[kALoads]) {
#pragma unroll
    for (int l = 0; l < kALoads; ++l) {
      const int i = int(threadIdx.x) + l * kGemmThreads;
      uint4 v = r[l];
      if constexpr (W::kPairedK) {  // elements 0..7 -> 0,4,1,5,2,6,3,7 (the weights' order)
        v = make_uint4(__byte_perm(r[l].x, r[l].z, 0x5410), __byte_perm(r[l].x, r[l].z, 0x7632),
                       __byte_perm(r[l].y, r[l].w, 0x5410), __byte_perm(r[l].y, r[l].w, 0x7632));
      }
      *reinterpret_cast<uint4*>(dst + (i / kAChunks) * kSmemStride + 8 * (i % kAChunks)) = v;
    }
  };
  clear_warp_tile(acc);
  uint4 ar[kALoads];
  typename W::Regs wr;
  fetch_a(ar, 0);
  w.fetch(wr, n0, 0);
  store_a(as, ar);
  w.store(ws, wr);
  __syncthreads();
  for (int k0 = 0, stage = 0; k0 < k; k0 += kTileK, stage ^= 1) {
    const bool more = k0 + kTileK < k;
    if (more) {  // the next stage's loads fly while this one is multiplied
      fetch_a(ar, k0 + kTileK);
      w.fetch(wr, n0, k0 + kTileK);
    }
    const uint16_t* a_s = as + stage * kStageElems;
    const uint16_t* w_s = ws + stage * kStageElems;
    // The tensor cores add inside an MMA chain with truncation (no round-to-nearest between the
    // products' partial sums), a bias that grows with the chain: over K = 2,880 in one chain it
    // moved the 20b KV cache ~1.8x further from the CPU reference than the decode kernel's FP32
    // FMA chains (tests/gpu_test_prefill.cpp, oracle case). Each stage's chain is added in FP32.
    float part[2][4][4];
    clear_warp_tile(part);
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) load_a_fragment(a[i], a_s + (wm * 32 + i * 16) * kSmemStride + kk);
#pragma unroll
      for (int j = 0; j < 4; j += 2) {
        load_b_fragments(b[j], b[j + 1], w_s + (wn * 32 + j * 8) * kSmemStride + kk);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) dev::mma_m16n8k16_bf16(part[i][j], a[i], b[j]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] += part[i][j][r];
    if (more) {  // the other stage was last read before the previous barrier
      store_a(as + (stage ^ 1) * kStageElems, ar);
      w.store(ws + (stage ^ 1) * kStageElems, wr);
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
