#include "host/weights_view.h"

#include <type_traits>

#include "host/error.h"

namespace gptoss {

ModelWeights bind_weights(const ModelConfig& config, const TensorLookup& lookup) {
  const std::vector<TensorSpec> specs = canonical_tensors(config);
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
  w.embed = static_cast<const bf16_bits*>(bind());
  w.layers.resize(static_cast<size_t>(config.num_layers));
  for (LayerWeights& layer : w.layers) {
    visit_layer_tensors(layer, [&](LayerTensor, auto& field) {
      field = static_cast<std::remove_reference_t<decltype(field)>>(bind());
    });
  }
  w.final_norm = static_cast<const bf16_bits*>(bind());
  w.lm_head = static_cast<const bf16_bits*>(bind());
  GPTOSS_CHECK(next == specs.size(), "internal: {} of {} canonical tensors bound", next,
               specs.size());
  return w;
}

}  // namespace gptoss
