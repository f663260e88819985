// platform.cuh — the vendor layer of the device code and the only device file that includes CUDA or
// HIP headers: warp size and lane masks, shuffles and votes, nanosleep, sm_id, a global timer,
// cache-hinted 16-byte loads, bf16/fp8 conversion instructions and the tensor-core MMA shapes the
// GEMVs use. Differences are inline functions, not renaming macros. Architecture features are
// constexpr predicates; a path the target lacks traps naming the feature and the arch.
// HIP branches follow the same contracts but are not compiled here yet (no hipcc on this machine).
#pragma once

#include <cstdint>
#include <cstdio>  // device printf in unsupported()
#include <type_traits>

#if defined(__HIPCC__)
#include <hip/hip_bf16.h>
#include <hip/hip_fp8.h>
#include <hip/hip_runtime.h>
#else
#include <cuda_bf16.h>     // __nv_bfloat16(2), __hmul2
#include <cuda_fp8.h>      // __nv_cvt_float_to_fp8, __nv_cvt_float2_to_fp8x2, __nv_cvt_fp8_to_halfraw
#include <cuda_runtime.h>
#endif

namespace gptoss::dev {

#if defined(__HIPCC__)
using bf16 = __hip_bfloat16;
using bf16x2 = __hip_bfloat162;
// CDNA wavefronts are 64 wide; CMake defines GPTOSS_WARP_SIZE from the arch list and the host
// checks it against the runtime warp size at startup.
#if defined(GPTOSS_WARP_SIZE)
inline constexpr int kWarpSize = GPTOSS_WARP_SIZE;
#else
inline constexpr int kWarpSize = 64;
#endif
#else
using bf16 = __nv_bfloat16;
using bf16x2 = __nv_bfloat162;
inline constexpr int kWarpSize = 32;
#endif

using LaneMask = std::conditional_t<kWarpSize == 64, uint64_t, uint32_t>;
inline constexpr LaneMask kFullLaneMask = ~LaneMask(0);
inline constexpr int kMaxBlockThreads = 1024;
inline constexpr int kMaxWarpsPerBlock = kMaxBlockThreads / kWarpSize;
static_assert(kWarpSize == 32 || kWarpSize == 64, "warp size is 32 (NVIDIA) or 64 (CDNA)");

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
  printf("gptoss: %s is not supported on this device target (cuda arch %d)\n", feature, kCudaArch);
  trap();
}

// ---- lanes, shuffles, votes ---------------------------------------------------------------------
// All ops here assume 1-D blocks (threadIdx.x is the linear thread index).
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
  return __all(pred);
#else
  return __all_sync(kFullLaneMask, pred);
#endif
}

// __syncthreads() that also returns whether pred was true in every thread of the block.
__device__ __forceinline__ bool sync_block_and(bool pred) { return __syncthreads_and(pred) != 0; }

__device__ __forceinline__ void sync_warp() {
#if defined(__HIPCC__)
  __builtin_amdgcn_wave_barrier();
#else
  __syncwarp();
#endif
}

// ---- timing and identity -------------------------------------------------------------------------
__device__ __forceinline__ void nanosleep(uint32_t ns) {
#if defined(__HIPCC__)
  __builtin_amdgcn_s_sleep(ns > 64 * 127 ? 127 : int(ns / 64 + 1));  // s_sleep counts ~64 clocks
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
  return wall_clock64() * 10;  // 100 MHz constant clock on CDNA
#else
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

// ---- loads -------------------------------------------------------------------------------------
// 16 bytes from read-only global memory that is read once (weights): not kept in L1.
// p must be 16-byte aligned.
__device__ __forceinline__ uint4 load_stream_16B(const void* p) {
#if defined(__HIPCC__)
  return __builtin_nontemporal_load(static_cast<const uint4*>(p));
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

// ---- conversion instructions ---------------------------------------------------------------------
// Two floats -> bf16x2 bits (lo in bits 0-15), round to nearest even. NaN becomes the canonical
// NaN 0x7fff (the host float_to_bf16 keeps the payload instead; both are NaN).
__device__ __forceinline__ uint32_t pack_bf16x2_rn(float lo, float hi) {
  const bf16x2 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// bf16x2 * bf16x2, round to nearest even; subnormal inputs and results are kept (checked on an
// H100: 2^-127 * 2^126 = 0.5 and 2^-126 * 0.5 = 2^-127).
__device__ __forceinline__ uint32_t mul_bf16x2(uint32_t a, uint32_t b) {
  const bf16x2 r = __hmul2(*reinterpret_cast<const bf16x2*>(&a), *reinterpret_cast<const bf16x2*>(&b));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// float -> FP8 E4M3 (OCP "fn"), round to nearest even, saturating to +-448; NaN -> 0x7f,
// +-inf -> +-448. Bit-exact with host float_to_fp8_e4m3 (host/numeric.h).
__device__ __forceinline__ uint32_t float_to_e4m3(float x) {
#if defined(__HIPCC__)
  return __hip_cvt_float_to_fp8(x, __HIP_SATFINITE, __HIP_E4M3);
#else
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
#endif
}

// FP8 E4M3 byte -> float (exact; 0x7f/0xff are NaN).
__device__ __forceinline__ float e4m3_to_float(uint32_t v) {
#if defined(__HIPCC__)
  return float(__hip_fp8_e4m3(__hip_fp8_storage_t(v), __HIP_E4M3));
#else
  const __half_raw h = __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(v), __NV_E4M3);
  return __half2float(__half(h));
#endif
}

// ---- tensor-core shapes (warp scope, all 32 lanes, NVIDIA fragment layouts) -------------------------
// gid = lane / 4, tig = lane % 4. D (f32 m16n8): d0,d1 = (row gid, cols 2tig, 2tig+1),
// d2,d3 = (row gid+8, same cols). C is accumulated in place.
// m16n8k16 bf16: a[0] = A[gid][2tig..+1], a[1] = A[gid+8][2tig..+1], a[2] = A[gid][2tig+8..+9],
// a[3] = A[gid+8][2tig+8..+9]; b[0] = B[2tig..+1][gid], b[1] = B[2tig+8..+9][gid]; lo half first.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4],
                                                  const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
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
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
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
