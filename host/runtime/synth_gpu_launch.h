// synth_gpu_launch.h — the C++17 interface of synth_gpu.cu (kept apart from the C++20 host
// headers so nvcc can compile the device side alone).
#pragma once

#include <cstdint>

namespace gptoss {

// family 0 = BF16 values (count elements), 1 = MXFP4 block bytes, 2 = E8M0 scale bytes (count
// bytes); the other arguments are the generator's parameters (model/synth_gen.h).
void synth_launch_device(void* dst, int family, uint64_t count, uint64_t key, uint32_t scale_base,
                         bool is_norm, int shift);

// XXH64 of a device buffer's bytes (copied back in chunks): the bit-identity check of
// --synthetic against an uploaded archive.
uint64_t device_xxh64(const void* src, uint64_t bytes);

}  // namespace gptoss
