// weights_view.h — typed, non-owning pointers to every weight of a model in the canonical
// layout (host/tensor_spec.h). Bound from any source that maps canonical names to bytes
// (a MappedArchive, an in-memory test model); the CPU reference reads weights only through it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "host/model_config.h"
#include "host/numeric.h"
#include "host/tensor_spec.h"

namespace gptoss {

// One layer's weights (scale fields stay null for BF16 weights); the fields are named after the tensors (visit_layer_tensors, tensor_spec.h).
struct LayerWeights {
  const bf16_bits* attn_norm;     // [hidden]
  const void* qkv_weight;         // [q+2kv, hidden] bf16, or e4m3 codes (attn format fp8)
  const float* qkv_scale;         // [q+2kv] per-row scales (fp8 only; null for bf16)
  const bf16_bits* qkv_bias;      // [q+2kv]
  const bf16_bits* sinks;         // [num_heads]
  const void* out_weight;         // [hidden, q] bf16 or e4m3
  const float* out_scale;         // [hidden] (fp8 only; null for bf16)
  const bf16_bits* out_bias;      // [hidden]
  const bf16_bits* mlp_norm;      // [hidden]
  const bf16_bits* router_weight; // [E, hidden]
  const bf16_bits* router_bias;   // [E]
  const uint8_t* mlp1_blocks;     // [E, 2I, hidden/32, 16] e2m1 pairs, low nibble = even element
  const uint8_t* mlp1_scales;     // [E, 2I, hidden/32] e8m0
  const bf16_bits* mlp1_bias;     // [E, 2I] interleaved gate/up
  const uint8_t* mlp2_blocks;     // [E, hidden, I/32, 16]
  const uint8_t* mlp2_scales;     // [E, hidden, I/32]
  const bf16_bits* mlp2_bias;     // [E, hidden]
};

struct ModelWeights {
  ModelConfig config;
  const bf16_bits* embed = nullptr;       // [vocab, hidden]
  std::vector<LayerWeights> layers;       // [num_layers]
  const bf16_bits* final_norm = nullptr;  // [hidden]
  const void* lm_head = nullptr;          // [vocab, hidden] bf16 or e4m3
  const float* lm_head_scale = nullptr;   // [vocab] (lm_head format fp8 only)
  WeightFormats formats;
};

// Returns the bytes of one canonical tensor; must throw gptoss::Error if it is missing.
using TensorLookup = std::function<std::span<const std::byte>(const TensorSpec&)>;

// Binds every tensor of archive_tensors(config, formats); throws if a span has the wrong size or
// is misaligned for its element type.
ModelWeights bind_weights(const ModelConfig& config, const TensorLookup& lookup,
                          const WeightFormats& formats = {});

}  // namespace gptoss
