// synth_gpu.cu — device side of host/runtime/synth_gpu.h: one grid-stride kernel per tensor kind family
// (BF16 values, MXFP4 block bytes, E8M0 scale bytes), each calling the shared generator.
#include "host/runtime/synth_gpu_launch.h"

#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>  // XXH3 state API: XXH64_createState/update/digest

// platform.cuh first: the vendor runtime (__host__ __device__, launches) that synth_gen.h assumes.
#include "device_ops/platform.cuh"
#include "model/fp8_rows.h"
#include "model/synth_gen.h"
#include "host/gpu.h"  // GpuError, copy_to_host, check_launch

namespace gptoss {
namespace {

__global__ void synth_bf16_kernel(uint16_t* out, uint64_t n, uint64_t key, bool is_norm, int shift) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += uint64_t(gridDim.x) * blockDim.x) {
    out[i] = conv::synth_bf16_value(key, is_norm, shift, i);
  }
}

__global__ void synth_blocks_kernel(uint8_t* out, uint64_t n, uint64_t key) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += uint64_t(gridDim.x) * blockDim.x) {
    out[i] = conv::synth_block_byte(key, i);
  }
}

__global__ void synth_scales_kernel(uint8_t* out, uint64_t n, uint64_t key, uint32_t base) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += uint64_t(gridDim.x) * blockDim.x) {
    out[i] = conv::synth_scale_byte(key, base, i);
  }
}

// One CTA per row: the row maximum, then the codes (model/fp8_rows.h, the converter's rule).
__global__ void quantize_rows_fp8_kernel(const uint16_t* w, int64_t rows, int64_t cols,
                                         uint8_t* codes, float* scales) {
  __shared__ float warp_max[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const uint16_t* row = w + r * cols;
    float amax = 0.0f;
    for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
      const float a = fp8::bf16_abs(row[k]);
      if (a > amax) amax = a;  // NaN never wins, as on the host
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float other = dev::shfl_xor(amax, o);  // platform.cuh: CUDA and HIP
      if (other > amax) amax = other;
    }
    if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
    __syncthreads();
    amax = 0.0f;
    for (int i = 0; i < int(blockDim.x >> 5); ++i) amax = warp_max[i] > amax ? warp_max[i] : amax;
    const float scale = fp8::row_scale(amax);
    if (threadIdx.x == 0) scales[r] = scale;
    for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
      codes[r * cols + k] = fp8::quantize(fp8::bf16_value(row[k]), scale);
    }
    __syncthreads();  // warp_max is reused by the next row
  }
}

}  // namespace

void quantize_rows_fp8_device(const uint16_t* bf16, int64_t rows, int64_t cols, uint8_t* codes,
                              float* scales) {
  const int blocks = int(rows < 65536 ? rows : 65536);
  quantize_rows_fp8_kernel<<<blocks, 256>>>(bf16, rows, cols, codes, scales);
  gpu::check_launch("FP8 weight quantization");
}

// Device launches for synth_gpu.cpp (which resolves the tensor's generator parameters with the
// C++20 host code); this file stays C++17.
void synth_launch_device(void* dst, int family, uint64_t count, uint64_t key, uint32_t scale_base,
                         bool is_norm, int shift) {
  constexpr int kThreads = 256, kBlocks = 2048;
  if (family == 1) {
    synth_blocks_kernel<<<kBlocks, kThreads>>>(static_cast<uint8_t*>(dst), count, key);
  } else if (family == 2) {
    synth_scales_kernel<<<kBlocks, kThreads>>>(static_cast<uint8_t*>(dst), count, key, scale_base);
  } else {
    synth_bf16_kernel<<<kBlocks, kThreads>>>(static_cast<uint16_t*>(dst), count, key, is_norm, shift);
  }
  gpu::check_launch("synthetic weight fill");
}

uint64_t device_xxh64(const void* src, uint64_t bytes) {
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  constexpr size_t kChunk = 256ull << 20;
  std::vector<unsigned char> buf(std::min<uint64_t>(kChunk, bytes));
  for (uint64_t o = 0; o < bytes; o += kChunk) {
    const size_t n = size_t(std::min<uint64_t>(kChunk, bytes - o));
    gpu::copy_to_host(buf.data(), static_cast<const unsigned char*>(src) + o, n);
    XXH64_update(st, buf.data(), n);
  }
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

}  // namespace gptoss
