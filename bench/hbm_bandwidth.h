// hbm_bandwidth.h — the floor's denominator: the HBM read bandwidth measured in this process by
// a streaming-read kernel (16-byte loads, every SM, a buffer far larger than L2, median of
// several timed passes). Every benchmark divides its bytes by this, measured in the same run.
#pragma once

#include <cstddef>

namespace gptoss::bench {

struct BandwidthResult {
  double read_gbs = 0;      // median over passes, GB/s (1e9 bytes)
  double best_gbs = 0;      // fastest pass
  size_t bytes = 0;         // bytes read per pass
  int passes = 0;
};

// Allocates `bytes` on the device (filled with non-zero data), runs `passes` timed reads after a
// warm-up, frees the buffer. Throws gpu::GpuError when there is no GPU.
BandwidthResult measure_read_bandwidth(size_t bytes = size_t(4) << 30, int passes = 20);

}  // namespace gptoss::bench
