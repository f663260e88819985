// hbm_bandwidth_off.cpp — bench/hbm_bandwidth.h in a CPU-only build: reports the missing GPU.
#ifdef GPTOSS_GPU_OFF
#include "bench/hbm_bandwidth.h"
#include "host/gpu.h"

namespace gptoss::bench {
BandwidthResult measure_read_bandwidth(size_t, int) {
  throw gpu::GpuError("this gptoss was built without GPU support (-DGPTOSS_GPU=OFF)",
                      "rebuild with -DGPTOSS_GPU=CUDA");
}
}  // namespace gptoss::bench
#endif  // GPTOSS_GPU_OFF
