// hbm_bandwidth.cu — streaming-read kernel for bench/hbm_bandwidth.h. Grid-stride 16-byte loads,
// four in flight per thread, XOR-folded into one word written per thread so nothing is optimised
// away.
#include "bench/hbm_bandwidth.h"

#include <algorithm>
#include <vector>

#include "device_ops/platform.cuh"  // load_evict_first
#include "host/gpu.h"

namespace gptoss::bench {
namespace {

__global__ void fill_kernel(uint4* buf, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint32_t v = uint32_t(i) * 2654435761u + 1u;
    buf[i] = make_uint4(v, v ^ 0x9e3779b9u, v + 7u, ~v);
  }
}

__global__ void stream_read_kernel(const uint4* __restrict__ buf, size_t n, uint32_t* sink) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  uint32_t acc = 0;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const uint4 a = dev::load_evict_first(buf + i), b = dev::load_evict_first(buf + i + stride);
    const uint4 c = dev::load_evict_first(buf + i + 2 * stride), d = dev::load_evict_first(buf + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^
           d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const uint4 a = dev::load_evict_first(buf + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

}  // namespace

BandwidthResult measure_read_bandwidth(size_t bytes, int passes) {
  const gpu::DeviceInfo info = gpu::device_info();
  const size_t n = bytes / sizeof(uint4);
  gpu::DeviceBuffer<uint4> buf(n, "bandwidth test buffer");
  constexpr int kThreads = 512;
  const int blocks = info.num_sms * 4;
  gpu::DeviceBuffer<uint32_t> sink(size_t(blocks) * kThreads, "bandwidth sink");
  fill_kernel<<<blocks, kThreads>>>(buf.get(), n);
  gpu::check_launch("fill_kernel");
  std::vector<float> ms;
  gpu::EventTimer timer;
  for (int p = -2; p < passes; ++p) {  // two warm-up passes
    timer.start();
    stream_read_kernel<<<blocks, kThreads>>>(buf.get(), n, sink.get());
    gpu::check_launch("stream_read_kernel");
    timer.stop();
    const float t = timer.elapsed_ms();
    if (p >= 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  BandwidthResult r;
  r.bytes = n * sizeof(uint4);
  r.passes = passes;
  r.read_gbs = double(r.bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;
  r.best_gbs = double(r.bytes) / (ms.front() * 1e-3) / 1e9;
  return r;
}

}  // namespace gptoss::bench
