// synth_gpu_launch.h — the C++17 interface of synth_gpu.cu (kept apart from the C++20 host
// headers so nvcc can compile the device side alone).
#pragma once

#include <cstdint>

namespace gptoss {

// family 0 = BF16 values (count elements), 1 = MXFP4 block bytes, 2 = E8M0 scale bytes (count
// bytes); the other arguments are the generator's parameters (model/synth_gen.h).
void synth_launch_device(void* dst, int family, uint64_t count, uint64_t key, uint32_t scale_base,
                         bool is_norm, int shift);

// Quantizes a BF16 [rows, cols] device matrix into E4M3 codes and per-row scales
// (model/fp8_rows.h; bit-identical to host/fp8_weights.h's quantize_rows_fp8).
void quantize_rows_fp8_device(const uint16_t* bf16, int64_t rows, int64_t cols, uint8_t* codes,
                              float* scales);

// XXH64 of a device buffer's bytes (copied back in chunks): the bit-identity check of
// --synthetic against an uploaded archive.
uint64_t device_xxh64(const void* src, uint64_t bytes);

}  // namespace gptoss
