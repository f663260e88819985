// control.h — ControlBlock: how the persistent kernel reports trouble to the host. A hung grid
// barrier (debug spin cap) or an invalid input writes the failing sm/layer/phase and the
// expected/observed counter values here before trapping, so a hang becomes a report.
#pragma once

#include <cstdint>

namespace gptoss::mk {

enum class KernelError : uint32_t { kNone = 0, kBarrierTimeout = 1, kBadToken = 2, kBadShape = 3 };

struct ControlBlock {
  uint32_t error;     // KernelError
  uint32_t sm;        // the reporting CTA's SM id
  int32_t layer;
  int32_t phase;
  uint32_t expected;  // barrier generation waited for
  uint32_t observed;
  int32_t value;      // e.g. the bad token id
  uint32_t jitter;    // debug: 1 = random nanosleep around barrier arrive/wait
};

}  // namespace gptoss::mk
