// control.h — ControlBlock: how the persistent kernel reports an invalid input to the host (the
// launch returns normally and the host reads the block). Hangs are reported elsewhere: a grid
// barrier whose spin cap expires writes a HangReport (device_ops/grid_barrier_state.h) into mapped
// host memory and traps, since a trap leaves device memory unreadable (host/runtime/engine.cpp
// turns it into "the megakernel hung: ... after phase P of layer L").
#pragma once

#include <cstdint>

namespace gptoss::mk {

// Values are stable (they appear in error messages); 1 and 3 were never written and are retired.
enum class KernelError : uint32_t { kNone = 0, kBadToken = 2 };

struct ControlBlock {
  uint32_t error;  // KernelError
  int32_t value;   // kBadToken: the token id
};

}  // namespace gptoss::mk
