// synth_gpu.h — synthetic weights generated directly in GPU memory (`--synthetic SHAPE
// --seed N`), bit-identical to `gptoss synth` + `convert` for the same shape and seed: the
// device runs the same integer generator (model/synth_gen.h) over canonical indices.
#pragma once

#include <cstdint>
#include <vector>

#include "host/model_config.h"
#include "host/runtime/synth_gpu_launch.h"
#include "host/tensor_spec.h"

namespace gptoss {

// Fills `dst` (device memory, spec.num_bytes()) with canonical tensor `spec` for `seed`.
void synth_fill_device(void* dst, const ModelConfig& config, uint64_t seed, const TensorSpec& spec);

// Fills every tensor of archive_tensors(config, formats) (dst[i] for tensor i): canonical tensors
// as above, FP8 weights quantized on the device from their BF16 canonical tensor (a temporary
// buffer), bit-identical to `gptoss synth` + `convert` with the same formats.
void synth_fill_device_all(const std::vector<void*>& dst, const ModelConfig& config, uint64_t seed,
                           const WeightFormats& formats);

}  // namespace gptoss
