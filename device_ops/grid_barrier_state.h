// grid_barrier_state.h — the plain-data side of grid_barrier.cuh, shared by host and device: the
// barrier's global state, its configuration, and the hang report written when a spin cap expires.
// The host allocates GridBarrierState zeroed once (it is reusable across launches) and may place the
// HangReport in mapped pinned host memory so that it survives the trap that follows it.
#pragma once

#include <cstdint>

namespace gptoss {

struct alignas(128) GridBarrierState {
  uint32_t arrived;     // CTAs arrived at the current barrier; the last one resets it to 0
  uint32_t pad0[31];    // arrivals and waiters use separate 128-byte lines
  uint32_t generation;  // barriers completed so far (mod 2^32); waiters spin on it
  uint32_t pad1[31];
};
static_assert(sizeof(GridBarrierState) == 256, "two 128-byte lines");

// Written once, by the first thread whose spin cap expires.
struct HangReport {
  uint32_t hung;      // 0 = no hang; 1 = the fields below are valid
  uint32_t sm;        // multiprocessor of the waiting thread
  uint32_t block;     // its blockIdx.x
  uint32_t phase;     // the caller's phase id
  uint32_t counter;   // barrier: the generation waited on; counter wait: the caller's counter id
  uint32_t expected;  // the value waited for
  uint32_t observed;  // the last value read
  uint32_t arrived;   // barrier: arrivals seen at the time (counter waits: 0)
  uint32_t waited_us; // how long the thread had waited when its cap expired (global timer)
};

struct GridBarrierConfig {
  uint32_t spin_cap = 0;       // polls before declaring a hang; 0 = wait forever
  uint32_t jitter_max_ns = 0;  // debug: random sleep up to this before arriving and after waiting
  HangReport* report = nullptr;
};

}  // namespace gptoss
