// synth_weights.h — synthetic weights on the host: the bytes of any canonical tensor from a seed
// (model/synth_gen.h is the per-value generator). Shared by the checkpoint writer (converter/
// synth.cpp), the CPU backend's --synthetic (host/cli/) and the GPU generator (host/runtime/
// synth_gpu.*), which takes its per-tensor parameters from synth_tensor_params(). Namespace
// conv, as model/synth_gen.h: the generator's names predate the split and its callers use them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "host/model_config.h"
#include "host/tensor_spec.h"
#include "model/synth_gen.h"

namespace gptoss::conv {

// The generator parameters of one canonical tensor: (layer, kind) identify it; shift / scale_base
// come from its fan-in. What a GPU kernel needs to generate the same tensor.
struct SynthTensorParams {
  uint32_t layer = 0;  // 0 for the embedding, final norm and LM head (their kinds differ)
  SynthKind kind = SynthKind::kEmbed;
  uint32_t fan_in = 0;
};
// Throws gptoss::Error for a name that is not a canonical tensor of `config`.
SynthTensorParams synth_tensor_params(const ModelConfig& config, const std::string& canonical_name);

// Writes bytes [byte_offset, byte_offset + out.size()) of canonical tensor `canonical` for `seed`.
// Any offset and size (chunks may cut elements); throws if the range leaves the tensor.
void synth_fill(const ModelConfig& config, uint64_t seed, const TensorSpec& canonical,
                uint64_t byte_offset, std::span<std::byte> out);

}  // namespace gptoss::conv
