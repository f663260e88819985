// model_config.h — the gpt-oss model configuration (FACTS.md section 1) and its presets.
// Read from a checkpoint's config.json (HF names or the original/ names) or an archive header;
// every engine dimension comes from here, never from literals.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/rope_yarn.h"

namespace gptoss {

// The largest width or length a config may have (hidden, heads x head_dim, contexts, ...):
// keeps every derived size far from overflow; the archive's ConfigRecord uses the same bound.
inline constexpr int kMaxDimension = 1 << 24;

struct ModelConfig {
  int num_layers = 0;
  int num_experts = 0;
  int experts_per_token = 4;
  int vocab_size = 0;
  int hidden = 2880;
  int intermediate = 2880;  // per expert
  int num_heads = 64;
  int num_kv_heads = 8;
  int head_dim = 64;
  int sliding_window = 128;
  int initial_context_length = 4096;
  int max_context = 131072;  // max_position_embeddings
  double rope_theta = 150000.0;
  double rope_scaling_factor = 32.0;
  double rope_ntk_alpha = 1.0;   // beta_slow
  double rope_ntk_beta = 32.0;   // beta_fast
  float rms_norm_eps = 1e-5f;
  float swiglu_limit = 7.0f;
  std::vector<uint8_t> layer_sliding;  // [num_layers] 1 = sliding_attention, 0 = full_attention

  // Derived widths.
  int q_dim() const { return num_heads * head_dim; }        // 4096
  int kv_dim() const { return num_kv_heads * head_dim; }    // 512
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }    // 5120
  int mlp1_dim() const { return 2 * intermediate; }         // 5760 (gate/up interleaved)
  int mxfp4_blocks_per_row(int k) const { return k / 32; }  // 90 for k = 2880
  bool is_sliding(int layer) const { return layer_sliding.at(layer) != 0; }

  // Throws gptoss::Error naming the first inconsistent field.
  void validate() const;

  // "tiny" (4 layers, 8 experts, real widths and vocabulary), "20b" or "120b".
  static ModelConfig preset(std::string_view shape);
  // Parses a checkpoint's config.json; accepts the HF keys and the original/ keys.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source_name);
  // The HF config.json for this configuration (what `synth` writes).
  nlohmann::json to_hf_json() const;
  // The original/config.json for this configuration (16 keys).
  nlohmann::json to_original_json() const;

  bool operator==(const ModelConfig&) const = default;
};

// The default layer pattern: even layers sliding, odd layers full (FACTS.md section 1).
std::vector<uint8_t> default_layer_pattern(int num_layers);

// The model's YaRN parameters (model/rope_yarn.h).
inline YarnParams yarn_params(const ModelConfig& c) {
  return YarnParams{c.head_dim, c.rope_theta, c.rope_scaling_factor, c.rope_ntk_beta,
                    c.rope_ntk_alpha, c.initial_context_length};
}

}  // namespace gptoss
