#include "host/weights_view.h"

#include "host/error.h"

namespace gptoss {

ModelWeights bind_weights(const ModelConfig& config, const TensorLookup& lookup) {
  namespace tn = tensor_names;
  ModelWeights w;
  w.config = config;
  w.layers.resize(static_cast<size_t>(config.num_layers));
  for (const TensorSpec& spec : canonical_tensors(config)) {
    const std::span<const std::byte> bytes = lookup(spec);
    GPTOSS_CHECK(bytes.size() == spec.num_bytes(), "tensor {}: {} bytes, expected {}", spec.name,
                 bytes.size(), spec.num_bytes());
    GPTOSS_CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % dtype_size(spec.dtype) == 0,
                 "tensor {}: data is not aligned to its element size", spec.name);
    const void* p = bytes.data();
    auto as_bf16 = [&] { return static_cast<const bf16_bits*>(p); };
    auto as_u8 = [&] { return static_cast<const uint8_t*>(p); };
    if (spec.name == tn::kEmbed) { w.embed = as_bf16(); continue; }
    if (spec.name == tn::kFinalNorm) { w.final_norm = as_bf16(); continue; }
    if (spec.name == tn::kLmHead) { w.lm_head = as_bf16(); continue; }
    // "layers.{l}.{suffix}"
    const size_t dot = spec.name.find('.', 7);
    const int l = std::stoi(spec.name.substr(7, dot - 7));
    const std::string_view suffix = std::string_view(spec.name).substr(dot + 1);
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    if (suffix == tn::kAttnNorm) L.attn_norm = as_bf16();
    else if (suffix == tn::kQkvWeight) L.qkv_weight = as_bf16();
    else if (suffix == tn::kQkvBias) L.qkv_bias = as_bf16();
    else if (suffix == tn::kSinks) L.sinks = as_bf16();
    else if (suffix == tn::kOutWeight) L.out_weight = as_bf16();
    else if (suffix == tn::kOutBias) L.out_bias = as_bf16();
    else if (suffix == tn::kMlpNorm) L.mlp_norm = as_bf16();
    else if (suffix == tn::kRouterWeight) L.router_weight = as_bf16();
    else if (suffix == tn::kRouterBias) L.router_bias = as_bf16();
    else if (suffix == tn::kMlp1Blocks) L.mlp1_blocks = as_u8();
    else if (suffix == tn::kMlp1Scales) L.mlp1_scales = as_u8();
    else if (suffix == tn::kMlp1Bias) L.mlp1_bias = as_bf16();
    else if (suffix == tn::kMlp2Blocks) L.mlp2_blocks = as_u8();
    else if (suffix == tn::kMlp2Scales) L.mlp2_scales = as_u8();
    else if (suffix == tn::kMlp2Bias) L.mlp2_bias = as_bf16();
    else throw Error(fmt::format("internal: unhandled canonical tensor {}", spec.name));
  }
  return w;
}

}  // namespace gptoss
