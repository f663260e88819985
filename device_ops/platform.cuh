// platform.cuh — the vendor layer of the device code and the only device file that includes CUDA or
// HIP headers: warp size and lane masks, shuffles and votes, nanosleep, sm_id, a global timer,
// cache-hinted loads, async global->shared copies, bf16/fp8 conversions and the tensor-core MMA
// shapes the GEMVs use. Differences are inline functions and types, not renaming macros; the CUDA
// and HIP versions sit side by side. Architecture features are constexpr predicates.
// Warps: device code is written against logical kWarpSize = 32-lane warps on every target. On CDNA
// (wave64, kWavefrontSize = 64) a wavefront holds two logical warps: shuffles are width 32 (they
// stay inside the caller's half), votes are a 64-bit ballot (LaneMask) read for the caller's half.
// The HIP branches are compiled for gfx90a with Debian's ROCm 5.2.3; none has run on AMD hardware.
#pragma once

#include <cstdint>
#include <cstdio>  // device printf in unsupported()
#include <type_traits>

#if defined(__HIPCC__)
#include <hip/hip_bfloat16.h>  // hip_bfloat16 (ROCm 5.2 has no hip_bf16.h and no FP8 type)
#include <hip/hip_runtime.h>
#else
#include <cuda_bf16.h>      // __nv_bfloat16(2), __hmul2, __float2bfloat16_rn
#include <cuda_fp8.h>       // __nv_cvt_float_to_fp8, __nv_cvt_fp8_to_halfraw
#include <cuda_pipeline.h>  // __pipeline_memcpy_async (cp.async)
#include <cuda_runtime.h>
#endif

namespace gptoss::dev {

#if defined(__HIPCC__)
using bf16 = hip_bfloat16;
// The hardware wavefront: 64 on CDNA. CMake defines GPTOSS_WAVEFRONT_SIZE from the arch list;
// the host checks it against the device's warpSize before any launch (host/gpu.cu).
#if defined(GPTOSS_WAVEFRONT_SIZE)
inline constexpr int kWavefrontSize = GPTOSS_WAVEFRONT_SIZE;
#else
inline constexpr int kWavefrontSize = 64;
#endif
#else
using bf16 = __nv_bfloat16;
using bf16x2 = __nv_bfloat162;
inline constexpr int kWavefrontSize = 32;
#endif
static_assert(sizeof(bf16) == 2, "bf16 is two bytes on every target");

// The logical warp every device op is written against (fragment layouts, tiles, reductions).
inline constexpr int kWarpSize = 32;
// A vote's raw result: one bit per lane of the hardware wavefront (64-bit on CDNA).
using LaneMask = std::conditional_t<kWavefrontSize == 64, uint64_t, uint32_t>;
inline constexpr LaneMask kFullLaneMask = ~LaneMask(0);
inline constexpr int kMaxBlockThreads = 1024;
inline constexpr int kMaxWarpsPerBlock = kMaxBlockThreads / kWarpSize;
static_assert(kWavefrontSize == 32 || kWavefrontSize == 64, "wavefronts are 32 or 64 lanes");
static_assert(kWavefrontSize % kWarpSize == 0, "a wavefront holds whole logical warps");

// ---- architecture predicates (true only in the device pass of a target that has the feature) ----
#if defined(__CUDA_ARCH__)
inline constexpr int kCudaArch = __CUDA_ARCH__;
#else
inline constexpr int kCudaArch = 0;
#endif
inline constexpr bool kHasMmaBf16 = kCudaArch >= 800;  // mma.sync m16n8k16 bf16 -> f32
inline constexpr bool kHasMmaFp8 = kCudaArch >= 890;   // mma.sync m16n8k32 e4m3 -> f32
inline constexpr bool kHasFp8Convert = kCudaArch >= 890;
inline constexpr bool kHasNanosleep = kCudaArch >= 700;
#if defined(__HIPCC__)
// The MMAs and FP8 conversions below are emulated in software on AMD targets (gfx90a has no FP8
// and its MFMA fragment layouts differ from NVIDIA's).
inline constexpr bool kMmaEmulated = true;
#else
inline constexpr bool kMmaEmulated = false;
#endif

// Aborts the kernel; the host sees a launch failure.
[[noreturn]] __device__ __forceinline__ void trap() {
#if defined(__HIPCC__)
  __builtin_trap();
#else
  __trap();
#endif
  __builtin_unreachable();
}

// Traps with a message: the device-side answer to a path this target cannot run.
[[noreturn]] __device__ inline void unsupported(const char* feature) {
#if defined(__HIPCC__)
  printf("gptoss: %s is not supported on this device target (AMD)\n", feature);
#else
  printf("gptoss: %s is not supported on this device target (cuda arch %d)\n", feature, kCudaArch);
#endif
  trap();
}

// ---- lanes, shuffles, votes ---------------------------------------------------------------------
// All ops here assume 1-D blocks (threadIdx.x is the linear thread index) whose size is a multiple
// of kWarpSize, and every lane of the logical warp calling (no divergence at a shuffle or vote).
__device__ __forceinline__ int lane_id() { return int(threadIdx.x) & (kWarpSize - 1); }
__device__ __forceinline__ int warp_id() { return int(threadIdx.x) / kWarpSize; }
__device__ __forceinline__ int num_warps() { return int(blockDim.x) / kWarpSize; }

template <class T>
__device__ __forceinline__ T shfl_xor(T v, int lane_mask) {
#if defined(__HIPCC__)
  return __shfl_xor(v, lane_mask, kWarpSize);
#else
  return __shfl_xor_sync(kFullLaneMask, v, lane_mask, kWarpSize);
#endif
}

// Lane src_lane (0..kWarpSize-1) of the caller's logical warp.
template <class T>
__device__ __forceinline__ T shfl(T v, int src_lane) {
#if defined(__HIPCC__)
  return __shfl(v, src_lane, kWarpSize);
#else
  return __shfl_sync(kFullLaneMask, v, src_lane, kWarpSize);
#endif
}

__device__ __forceinline__ bool warp_all(bool pred) {
#if defined(__HIPCC__)
  // The ballot covers the whole wavefront; keep the caller's 32-lane half.
  const LaneMask votes = __ballot(pred);
  const int shift = kWavefrontSize == 64 ? int(__lane_id()) & (kWavefrontSize - kWarpSize) : 0;
  return uint32_t(votes >> shift) == 0xffffffffu;
#else
  return __all_sync(kFullLaneMask, pred);
#endif
}

// __syncthreads() that also returns whether pred was true in every thread of the block.
__device__ __forceinline__ bool sync_block_and(bool pred) { return __syncthreads_and(pred) != 0; }

// Orders the shared-memory accesses of the lanes of a logical warp.
__device__ __forceinline__ void sync_warp() {
#if defined(__HIPCC__)
  // A wavefront runs in lockstep; the fence keeps the compiler (and LDS) from reordering across.
  __builtin_amdgcn_fence(__ATOMIC_ACQ_REL, "wavefront");
  __builtin_amdgcn_wave_barrier();
#else
  __syncwarp();
#endif
}

// ---- timing and identity -------------------------------------------------------------------------
__device__ __forceinline__ void nanosleep(uint32_t ns) {
#if defined(__HIPCC__)
  // s_sleep takes an immediate (units of 64 clocks, ~64 ns at 1 GHz): sleep in units of one.
  for (uint32_t t = 0; t < ns; t += 64) __builtin_amdgcn_s_sleep(1);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  __nanosleep(ns);
#else
  (void)ns;
#endif
}

// The multiprocessor this thread runs on (for diagnostics only: it may change between launches).
__device__ __forceinline__ uint32_t sm_id() {
#if defined(__HIPCC__)
  return __smid();
#else
  uint32_t id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
#endif
}

// A nanosecond clock shared by all multiprocessors (jitter seeds, spin timeouts).
__device__ __forceinline__ uint64_t global_timer_ns() {
#if defined(__HIPCC__)
  return __builtin_amdgcn_s_memrealtime() * 10;  // the constant 100 MHz clock of gfx9/CDNA
#else
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

// ---- loads -------------------------------------------------------------------------------------
#if defined(__HIPCC__)
namespace detail {
using U32x4 = uint32_t __attribute__((ext_vector_type(4)));
__device__ __forceinline__ uint4 nontemporal_16B(const void* p) {
  const U32x4 v = __builtin_nontemporal_load(static_cast<const U32x4*>(p));
  return make_uint4(v.x, v.y, v.z, v.w);
}
}  // namespace detail
#endif

// 16 bytes from read-only global memory that is read once (weights): not kept in L1.
// p must be 16-byte aligned.
__device__ __forceinline__ uint4 load_stream_16B(const void* p) {
#if defined(__HIPCC__)
  return detail::nontemporal_16B(p);
#else
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#endif
}

// One read-only byte (MXFP4 scales).
__device__ __forceinline__ uint32_t load_readonly_u8(const uint8_t* p) {
#if defined(__HIPCC__)
  return *p;
#else
  return __ldg(p);
#endif
}

// Streaming load (evict-first; weights read once per token). T: uint4 or uint8_t.
__device__ __forceinline__ uint4 load_evict_first(const uint4* p) {
#if defined(__HIPCC__)
  return detail::nontemporal_16B(p);
#else
  return __ldcs(p);
#endif
}
__device__ __forceinline__ uint8_t load_evict_first(const uint8_t* p) {
#if defined(__HIPCC__)
  return __builtin_nontemporal_load(p);
#else
  return __ldcs(p);
#endif
}

// A load at L2, past the (non-coherent) L1: data another CTA wrote during this launch and
// published through atomics.cuh or __threadfence(). On CDNA a plain load suffices: the agent-scope
// acquire that made the data visible also invalidated this CU's L1 (the AMDGPU memory model), and
// all waves of a workgroup share that L1. T: float, int, uint16_t, uint4.
template <class T>
__device__ __forceinline__ T load_l2(const T* p) {
#if defined(__HIPCC__)
  return *p;
#else
  return __ldcg(p);
#endif
}

// ---- asynchronous global -> shared copies (per thread; 16 bytes, both 16-byte aligned) -----------
// copy_async_16B issues, copy_async_commit closes a group, copy_async_wait_all waits for all of
// this thread's groups. Other threads see the data after a sync_warp()/__syncthreads().
// On AMD the copy is synchronous (no cp.async equivalent is used).
__device__ __forceinline__ void copy_async_16B(void* smem_dst, const void* gmem_src) {
#if defined(__HIPCC__)
  *static_cast<uint4*>(smem_dst) = *static_cast<const uint4*>(gmem_src);
#else
  __pipeline_memcpy_async(smem_dst, gmem_src, sizeof(uint4));
#endif
}
__device__ __forceinline__ void copy_async_commit() {
#if !defined(__HIPCC__)
  __pipeline_commit();
#endif
}
__device__ __forceinline__ void copy_async_wait_all() {
#if !defined(__HIPCC__)
  __pipeline_wait_prior(0);
#endif
}

// ---- conversions ---------------------------------------------------------------------------------
#if defined(__HIPCC__)
namespace detail {
// float -> bf16 bits, round to nearest even; NaN -> 0x7fff (what the CUDA intrinsics give).
__device__ __forceinline__ uint32_t bf16_bits_rn_sw(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
}  // namespace detail
#endif

// float -> bf16 bits, round to nearest even (NaN -> 0x7fff).
__device__ __forceinline__ uint16_t bf16_bits_rn(float f) {
#if defined(__HIPCC__)
  return uint16_t(detail::bf16_bits_rn_sw(f));
#else
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#endif
}

// Two floats -> bf16x2 bits (lo in bits 0-15), round to nearest even. NaN becomes the canonical
// NaN 0x7fff (the host float_to_bf16 keeps the payload instead; both are NaN).
__device__ __forceinline__ uint32_t pack_bf16x2_rn(float lo, float hi) {
#if defined(__HIPCC__)
  return detail::bf16_bits_rn_sw(lo) | (detail::bf16_bits_rn_sw(hi) << 16);
#else
  const bf16x2 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
#endif
}

// bf16x2 * bf16x2, round to nearest even; subnormal inputs and results are kept (checked on an
// H100: 2^-127 * 2^126 = 0.5 and 2^-126 * 0.5 = 2^-127). On AMD: the FP32 product (exact unless it
// falls below 2^-149) rounded to bf16.
__device__ __forceinline__ uint32_t mul_bf16x2(uint32_t a, uint32_t b) {
#if defined(__HIPCC__)
  const float lo = __uint_as_float(a << 16) * __uint_as_float(b << 16);
  const float hi = __uint_as_float(a & 0xffff0000u) * __uint_as_float(b & 0xffff0000u);
  return pack_bf16x2_rn(lo, hi);
#else
  const bf16x2 r = __hmul2(*reinterpret_cast<const bf16x2*>(&a), *reinterpret_cast<const bf16x2*>(&b));
  return *reinterpret_cast<const uint32_t*>(&r);
#endif
}

// float -> FP8 E4M3 (OCP "fn"), round to nearest even, saturating to +-448; NaN -> 0x7f,
// +-inf -> +-448. Bit-exact with host float_to_fp8_e4m3 (host/numeric.h). In software on AMD.
__device__ __forceinline__ uint32_t float_to_e4m3(float x) {
#if defined(__HIPCC__)
  const uint32_t sign = (__float_as_uint(x) >> 24) & 0x80u;
  const float a = fabsf(x);
  if (a != a) return 0x7fu;
  if (a >= 448.0f) return sign | 0x7eu;
  if (a < 0.015625f) return sign | uint32_t(rintf(a * 512.0f));  // subnormals m * 2^-9 (m = 8: 2^-6)
  const uint32_t u = __float_as_uint(a);
  const uint32_t r = (u + 0x7ffffu + ((u >> 20) & 1u)) >> 20;  // exponent and 3 mantissa bits, RNE
  return sign | (r - ((127u - 7u) << 3));
#else
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
#endif
}

// FP8 E4M3 byte -> float (exact; 0x7f/0xff are NaN).
__device__ __forceinline__ float e4m3_to_float(uint32_t v) {
#if defined(__HIPCC__)
  const uint32_t exp = (v >> 3) & 0xfu, man = v & 7u;
  float mag;
  if ((v & 0x7fu) == 0x7fu) {
    mag = __uint_as_float(0x7fc00000u);
  } else if (exp == 0) {
    mag = float(man) * 0.001953125f;  // man * 2^-9
  } else {
    mag = __uint_as_float(((exp + 120u) << 23) | (man << 20));
  }
  return (v & 0x80u) ? -mag : mag;
#else
  const __half_raw h = __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(v), __NV_E4M3);
  return __half2float(__half(h));
#endif
}

// Two FP8 E4M3 codes (bits 0-7 and 8-15 of v) -> floats (exact): one packed conversion to f16x2 on
// NVIDIA (sm_89+), then f16 -> f32; 0x7f/0xff are NaN.
__device__ __forceinline__ float2 e4m3x2_to_float2(uint32_t v) {
#if defined(__HIPCC__)
  return make_float2(e4m3_to_float(v & 0xffu), e4m3_to_float((v >> 8) & 0xffu));
#else
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v & 0xffffu), __NV_E4M3);
  return __half22float2(__half2(h));
#endif
}

// ---- tensor-core shapes (logical-warp scope, all 32 lanes, NVIDIA fragment layouts) ---------------
// gid = lane / 4, tig = lane % 4. D (f32 m16n8): d0,d1 = (row gid, cols 2tig, 2tig+1),
// d2,d3 = (row gid+8, same cols). C is accumulated in place.
// On AMD both shapes are emulated with width-32 shuffles in the same fragment layouts (FP32 FMAs:
// rounding differs from the tensor cores' truncating accumulation, within the tests' tolerances).
#if defined(__HIPCC__)
namespace detail {
// Generic m16n8kK emulation: register r of A/B packs kPer values; dot(a, b) multiplies the kPer
// values of one A register with those of one B register. A row g's k-slice t lives in lane 4g + t
// (a[0]/a[2] for row g, a[1]/a[3] for row g + 8); B column n's k-slice t lives in lane 4n + t.
template <class Dot>
__device__ __forceinline__ void mma_m16n8_emulated(float (&d)[4], const uint32_t (&a)[4],
                                                   const uint32_t (&b)[2], Dot dot) {
  const int lane = lane_id(), gid = lane >> 2, tig = lane & 3;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const int src_a = 4 * gid + t, src_b0 = 4 * (2 * tig) + t, src_b1 = 4 * (2 * tig + 1) + t;
    const uint32_t a0 = shfl(a[0], src_a), a1 = shfl(a[1], src_a);
    const uint32_t a2 = shfl(a[2], src_a), a3 = shfl(a[3], src_a);
    const uint32_t b00 = shfl(b[0], src_b0), b01 = shfl(b[1], src_b0);
    const uint32_t b10 = shfl(b[0], src_b1), b11 = shfl(b[1], src_b1);
    d[0] += dot(a0, b00) + dot(a2, b01);
    d[1] += dot(a0, b10) + dot(a2, b11);
    d[2] += dot(a1, b00) + dot(a3, b01);
    d[3] += dot(a1, b10) + dot(a3, b11);
  }
}
}  // namespace detail
#endif  // __HIPCC__

// m16n8k16 bf16: a[0] = A[gid][2tig..+1], a[1] = A[gid+8][2tig..+1], a[2] = A[gid][2tig+8..+9],
// a[3] = A[gid+8][2tig+8..+9]; b[0] = B[2tig..+1][gid], b[1] = B[2tig+8..+9][gid]; lo half first.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4],
                                                  const uint32_t (&b)[2]) {
#if defined(__HIPCC__)
  detail::mma_m16n8_emulated(d, a, b, [](uint32_t x, uint32_t y) {
    return fmaf(__uint_as_float(x << 16), __uint_as_float(y << 16),
                __uint_as_float(x & 0xffff0000u) * __uint_as_float(y & 0xffff0000u));
  });
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  (void)d, (void)a, (void)b;
  unsupported("mma m16n8k16 bf16");
#endif
}

// m16n8k32 e4m3: a[0] = A[gid][4tig..+3], a[1] = A[gid+8][4tig..+3], a[2] = A[gid][4tig+16..+19],
// a[3] = A[gid+8][4tig+16..+19]; b[0] = B[4tig..+3][gid], b[1] = B[4tig+16..+19][gid];
// byte 0 first.
__device__ __forceinline__ void mma_m16n8k32_e4m3(float (&d)[4], const uint32_t (&a)[4],
                                                  const uint32_t (&b)[2]) {
#if defined(__HIPCC__)
  detail::mma_m16n8_emulated(d, a, b, [](uint32_t x, uint32_t y) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s = fmaf(e4m3_to_float((x >> (8 * i)) & 0xffu), e4m3_to_float((y >> (8 * i)) & 0xffu), s);
    }
    return s;
  });
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  (void)d, (void)a, (void)b;
  unsupported("mma m16n8k32 e4m3");
#endif
}

}  // namespace gptoss::dev
