#include "host/runtime/synth_gpu.h"

#ifndef GPTOSS_GPU_OFF
#include "host/synth_weights.h"

namespace gptoss {

void synth_fill_device(void* dst, const ModelConfig& config, uint64_t seed, const TensorSpec& spec) {
  using conv::SynthKind;
  const conv::SynthTensorParams p = conv::synth_tensor_params(config, spec.name);
  const uint64_t key = conv::synth_tensor_key(seed, p.layer, p.kind);
  switch (p.kind) {
    case SynthKind::kMlp1Blocks:
    case SynthKind::kMlp2Blocks:
      synth_launch_device(dst, 1, spec.num_bytes(), key, 0, false, 0);
      break;
    case SynthKind::kMlp1Scales:
    case SynthKind::kMlp2Scales:
      synth_launch_device(dst, 2, spec.num_bytes(), key, conv::synth_scale_base(p.fan_in), false, 0);
      break;
    default:
      synth_launch_device(dst, 0, spec.num_elements(), key, 0, conv::synth_is_norm(p.kind),
                          conv::synth_bf16_shift(p.kind, p.fan_in));
      break;
  }
}

}  // namespace gptoss
#endif  // GPTOSS_GPU_OFF
