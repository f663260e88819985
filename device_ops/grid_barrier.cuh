// grid_barrier.cuh — grid-wide synchronisation for the persistent megakernel: a generation-counted
// grid barrier (release on arrive, acquire on wait) and counter waits, each with a debug spin cap
// that writes a HangReport (sm, block, phase, counter, expected, observed) and traps, and a debug
// jitter mode (random nanosleep around arrive and wait) that shakes out missing synchronisation.
// Contract: all CTAs of the grid are co-resident (cooperative launch) and every thread of every CTA
// calls sync() with the same phase sequence; blocks are 1-D. State: grid_barrier_state.h.
#pragma once

#include "device_ops/atomics.cuh"
#include "device_ops/grid_barrier_state.h"
#include "device_ops/platform.cuh"

namespace gptoss::dev {

namespace detail {
// Records the first hang (later ones are dropped) and makes it visible to the host.
__device__ inline void report_hang(HangReport* r, uint32_t phase, uint32_t counter, uint32_t expected,
                                   uint32_t observed, uint32_t arrived, uint64_t wait_start_ns) {
  if (r == nullptr || cas_relaxed(&r->hung, 0u, 1u) != 0u) return;
  r->sm = sm_id();
  r->block = blockIdx.x;
  r->phase = phase;
  r->counter = counter;
  r->expected = expected;
  r->observed = observed;
  r->arrived = arrived;
  r->waited_us = uint32_t((global_timer_ns() - wait_start_ns) / 1000);
  fence_system();
}

__device__ __forceinline__ uint32_t xorshift32(uint32_t& s) {
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}
}  // namespace detail

// Held in registers by each CTA (only thread 0's copy is used). kTrap = false returns false from a
// wait whose spin cap expired instead of trapping (for tests of the report).
template <bool kTrap = true>
class GridBarrier {
 public:
  __device__ GridBarrier(GridBarrierState* state, uint32_t num_ctas, const GridBarrierConfig& cfg)
      : state_(state), num_ctas_(num_ctas), cfg_(cfg) {
    rng_ = uint32_t(global_timer_ns()) * 2654435761u ^ (blockIdx.x + 1) * 0x9e3779b9u;
    if (rng_ == 0) rng_ = 1;
  }

  // Grid scope: returns when every CTA has called sync() for this barrier. All writes any thread of
  // any CTA made before its call are visible to all threads after it. Returns false only when
  // kTrap is false and this CTA's wait hit the spin cap (every thread of the CTA gets the result).
  __device__ bool sync(uint32_t phase) {
    __syncthreads();  // the CTA's writes precede thread 0's release below (release is cumulative)
    bool ok = true;
    if (threadIdx.x == 0) {
      jitter();
      // The generation cannot move before this CTA arrives, so this read is the current one.
      const uint32_t gen = ld_relaxed(&state_->generation);
      // Publishes this CTA's writes of the phase. Observed by the last arriver's acq_rel add,
      // which republishes them with the generation store below.
      const uint32_t old = fetch_add_acq_rel(&state_->arrived, 1u);
      if (old + 1 == num_ctas_) {
        // The reset is ordered before the release: the next round's arrivals acquire it first.
        st_relaxed(&state_->arrived, 0u);
        // Publishes every CTA's writes; observed by the waiters' ld_acquire of the generation.
        st_release(&state_->generation, gen + 1);
      } else {
        uint32_t polls = 0, g;
        const uint64_t t0 = cfg_.spin_cap != 0 ? global_timer_ns() : 0;
        // Acquire: observes the st_release of the generation by the last arriver.
        while ((g = ld_acquire(&state_->generation)) == gen) {
          if (cfg_.spin_cap != 0 && ++polls >= cfg_.spin_cap) {
            detail::report_hang(cfg_.report, phase, gen, gen + 1, g, ld_relaxed(&state_->arrived), t0);
            if constexpr (kTrap) trap();
            ok = false;
            break;
          }
        }
      }
      jitter();
    }
    return sync_block_and(ok);  // the other threads read after thread 0's acquire
  }

 private:
  __device__ void jitter() {
    if (cfg_.jitter_max_ns != 0) nanosleep(detail::xorshift32(rng_) % (cfg_.jitter_max_ns + 1));
  }

  GridBarrierState* state_;
  uint32_t num_ctas_;
  GridBarrierConfig cfg_;
  uint32_t rng_;
};

// Thread scope: waits until the counter reaches `expected` (wrap-safe comparison). Acquire: observes
// the fetch_add_release by which a producer published its data (the caller names it). Returns false
// only when kTrap is false and the spin cap expired (after writing the report).
template <bool kTrap = true>
__device__ bool wait_counter_geq(const uint32_t* counter, uint32_t expected, uint32_t phase,
                                 uint32_t counter_id, const GridBarrierConfig& cfg) {
  uint32_t polls = 0, v;
  const uint64_t t0 = cfg.spin_cap != 0 ? global_timer_ns() : 0;
  while (int32_t((v = ld_acquire(counter)) - expected) < 0) {
    if (cfg.spin_cap != 0 && ++polls >= cfg.spin_cap) {
      detail::report_hang(cfg.report, phase, counter_id, expected, v, 0u, t0);
      if constexpr (kTrap) trap();
      return false;
    }
  }
  return true;
}

}  // namespace gptoss::dev
