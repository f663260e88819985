// bulk_copy.cuh — Hopper's bulk-copy engine (cp.async.bulk, global -> shared) with completion on
// shared-memory mbarriers: the primitives under the megakernel's weight ring. One thread issues a
// copy of any 16-byte multiple; the copy engine moves it while every thread of the CTA computes;
// waiters spin on the mbarrier's phase parity. Thread scope unless a function says otherwise.
// On targets without the engine (AMD, pre-sm_90) kHasBulkCopy is false: the functions compile,
// copy_bulk copies synchronously with plain loads in the calling thread, and mbarrier waits
// degrade to nothing (callers then order with __syncthreads(), see megakernel/weight_ring.cuh).
#pragma once

#include <cstdint>

#include "device_ops/platform.cuh"

namespace gptoss::dev {

#if defined(__HIPCC__)
inline constexpr bool kHasBulkCopy = false;
#else
inline constexpr bool kHasBulkCopy = kCudaArch >= 900;
#endif

// Bulk copies need 16-byte aligned addresses and sizes that are multiples of 16.
inline constexpr uint32_t kBulkCopyAlign = 16;
// An mbarrier's transaction count holds at most 2^20 - 1 bytes per phase.
inline constexpr uint32_t kMaxBulkBytesPerPhase = (1u << 20) - 1;

#if !defined(__HIPCC__)
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// One thread: initialises an mbarrier that completes a phase after `count` arrivals (and all the
// transaction bytes announced in that phase). Make it visible to the copy engine with
// fence_mbarrier_init() and to the other threads with a __syncthreads() before first use.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
#if defined(__HIPCC__)
  *bar = count;
#else
  if constexpr (kHasBulkCopy) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count)
                 : "memory");
  }
#endif
}

__device__ __forceinline__ void fence_mbarrier_init() {
#if !defined(__HIPCC__)
  if constexpr (kHasBulkCopy) asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

// Orders this thread's earlier generic-proxy shared-memory accesses (e.g. reads of a ring slot that
// a __syncthreads() collected from every thread) before later bulk copies into the same bytes.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if !defined(__HIPCC__)
  if constexpr (kHasBulkCopy) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// Arrives on `bar` (one of its `count` arrivals) and announces `bytes` of bulk copies that will
// complete on it in the current phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if !defined(__HIPCC__)
  if constexpr (kHasBulkCopy) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)),
                 "r"(bytes)
                 : "memory");
  }
#endif
  (void)bar;
  (void)bytes;
}

// Arrives on `bar` (one of its `count` arrivals).
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if !defined(__HIPCC__)
  if constexpr (kHasBulkCopy) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
  }
#endif
  (void)bar;
}

// True once the phase with parity `parity` of `bar` has completed (non-blocking probe).
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, uint32_t parity) {
#if defined(__HIPCC__)
  (void)bar;
  (void)parity;
  return true;
#else
  if constexpr (kHasBulkCopy) {
    uint32_t done;
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
    return done != 0;
  } else {
    return true;
  }
#endif
}

// Copies `bytes` (multiple of 16) from global `src` to shared `dst` (both 16-byte aligned); the
// completion is counted on `bar` as transaction bytes (announced by mbarrier_arrive_expect_tx).
// Without the bulk-copy engine: a synchronous copy by the calling thread.
__device__ __forceinline__ void copy_bulk(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__HIPCC__)
  (void)bar;
  for (uint32_t i = 0; i < bytes; i += 16) {
    *reinterpret_cast<uint4*>(static_cast<uint8_t*>(dst) + i) =
        *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(src) + i);
  }
#else
  if constexpr (kHasBulkCopy) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
            "r"(smem_u32(dst)),
        "l"(src), "r"(bytes), "r"(smem_u32(bar))
        : "memory");
  } else {
    (void)bar;
    for (uint32_t i = 0; i < bytes; i += 16) {
      *reinterpret_cast<uint4*>(static_cast<uint8_t*>(dst) + i) =
          *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(src) + i);
    }
  }
#endif
}

}  // namespace gptoss::dev
