#include "host/weights_view.h"

#include <type_traits>

#include "host/error.h"

namespace gptoss {

ModelWeights bind_weights(const ModelConfig& config, const TensorLookup& lookup,
                          const WeightFormats& formats) {
  const std::vector<TensorSpec> specs = archive_tensors(config, formats);
  size_t next = 0;
  // The bytes of the next canonical tensor, checked against its spec.
  auto bind = [&]() -> const void* {
    const TensorSpec& spec = specs.at(next++);
    const std::span<const std::byte> bytes = lookup(spec);
    GPTOSS_CHECK(bytes.size() == spec.num_bytes(), "tensor {}: {} bytes, expected {}", spec.name,
                 bytes.size(), spec.num_bytes());
    GPTOSS_CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % dtype_size(spec.dtype) == 0,
                 "tensor {}: data is not aligned to its element size", spec.name);
    return bytes.data();
  };
  ModelWeights w;
  w.config = config;
  w.formats = formats;
  w.embed = static_cast<const bf16_bits*>(bind());
  w.layers.assign(static_cast<size_t>(config.num_layers), LayerWeights{});
  for (LayerWeights& layer : w.layers) {
    visit_layer_tensors(layer, formats.attn, [&](LayerTensor, auto& field) {
      field = static_cast<std::remove_reference_t<decltype(field)>>(bind());
    });
  }
  w.final_norm = static_cast<const bf16_bits*>(bind());
  w.lm_head = bind();
  if (formats.lm_head == archive::WeightFormat::kFP8) w.lm_head_scale = static_cast<const float*>(bind());
  GPTOSS_CHECK(next == specs.size(), "internal: {} of {} archive tensors bound", next,
               specs.size());
  return w;
}

}  // namespace gptoss
