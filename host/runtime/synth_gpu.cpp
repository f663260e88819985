#include "host/runtime/synth_gpu.h"

#ifndef GPTOSS_GPU_OFF
#include "host/error.h"
#include "host/gpu.h"
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

void synth_fill_device_all(const std::vector<void*>& dst, const ModelConfig& config, uint64_t seed,
                           const WeightFormats& formats) {
  const std::vector<TensorSpec> specs = archive_tensors(config, formats);
  GPTOSS_CHECK(dst.size() == specs.size(), "internal: {} buffers for {} tensors", dst.size(),
               specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string canonical_name;
    if (!fp8_quantized_from(specs[i], &canonical_name)) {
      synth_fill_device(dst[i], config, seed, specs[i]);
      continue;
    }
    if (specs[i].dtype != DType::kF8E4M3) continue;  // the scales: written with their weight
    GPTOSS_CHECK(i + 1 < specs.size() && specs[i + 1].dtype == DType::kF32,
                 "internal: {} is not followed by its scales", specs[i].name);
    const TensorSpec canonical{canonical_name, DType::kBF16, specs[i].shape};
    gpu::DeviceBuffer<uint16_t> bf16(canonical.num_elements(), "FP8 quantization scratch");
    synth_fill_device(bf16.get(), config, seed, canonical);
    quantize_rows_fp8_device(bf16.get(), canonical.shape[0], canonical.shape[1],
                             static_cast<uint8_t*>(dst[i]), static_cast<float*>(dst[i + 1]));
    gpu::synchronize();  // before the scratch buffer is freed
  }
}

}  // namespace gptoss
#endif  // GPTOSS_GPU_OFF
