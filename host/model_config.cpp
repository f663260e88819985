#include "host/model_config.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "host/error.h"

namespace gptoss {

std::vector<uint8_t> default_layer_pattern(int num_layers) {
  std::vector<uint8_t> pattern(static_cast<size_t>(num_layers));
  for (int i = 0; i < num_layers; ++i) pattern[i] = (i % 2 == 0) ? 1 : 0;
  return pattern;
}

ModelConfig ModelConfig::preset(std::string_view shape) {
  ModelConfig c;
  c.vocab_size = 201088;
  if (shape == "tiny") {
    c.num_layers = 4;
    c.num_experts = 8;
  } else if (shape == "20b") {
    c.num_layers = 24;
    c.num_experts = 32;
  } else if (shape == "120b") {
    c.num_layers = 36;
    c.num_experts = 128;
  } else {
    throw Error(fmt::format("unknown model shape '{}'", shape), "use one of: tiny, 20b, 120b");
  }
  c.layer_sliding = default_layer_pattern(c.num_layers);
  c.validate();
  return c;
}

void ModelConfig::validate() const {
  auto need = [](bool ok, std::string_view what) {
    if (!ok) throw Error(fmt::format("invalid model config: {}", what));
  };
  need(num_layers > 0 && num_layers <= 1024, "num_hidden_layers must be in 1..1024");
  need(num_experts > 0 && num_experts <= 1024, "num_local_experts must be in 1..1024");
  need(experts_per_token > 0 && experts_per_token <= num_experts,
       "experts_per_token must be in 1..num_experts");
  need(vocab_size > 0 && vocab_size <= (1 << 24), "vocab_size must be in 1..16M");
  need(hidden > 0 && hidden % 32 == 0, "hidden_size must be a positive multiple of 32 (MXFP4 blocks)");
  need(intermediate > 0 && intermediate % 32 == 0,
       "intermediate_size must be a positive multiple of 32 (MXFP4 blocks)");
  need(head_dim > 0 && head_dim % 2 == 0, "head_dim must be positive and even (RoPE pairs)");
  need(num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0,
       "num_attention_heads must be a positive multiple of num_key_value_heads");
  need(sliding_window > 0, "sliding_window must be positive");
  need(initial_context_length > 0, "initial_context_length must be positive");
  need(max_context > 0, "max_position_embeddings must be positive (or initial_context_length x "
                        "rope factor must fit when it is absent)");
  // Bounds that keep every derived width and byte count far from overflow; the archive's
  // ConfigRecord reader checks the same (a config.json accepted here always fits an archive).
  const std::pair<int, const char*> dims[] = {
      {hidden, "hidden_size"},         {intermediate, "intermediate_size"},
      {num_heads, "num_attention_heads"}, {num_kv_heads, "num_key_value_heads"},
      {head_dim, "head_dim"},          {sliding_window, "sliding_window"},
      {initial_context_length, "initial_context_length"}, {max_context, "max_position_embeddings"}};
  for (const auto& [value, name] : dims) {
    need(value <= kMaxDimension, fmt::format("{} = {} exceeds {}", name, value, kMaxDimension));
  }
  need(int64_t{num_heads} * head_dim <= kMaxDimension,
       fmt::format("num_attention_heads x head_dim exceeds {}", kMaxDimension));
  need(std::isfinite(rope_theta) && rope_theta > 1.0, "rope_theta must be finite and > 1");
  need(std::isfinite(rope_scaling_factor) && rope_scaling_factor >= 1.0,
       "rope scaling factor must be finite and >= 1");
  need(std::isfinite(rope_ntk_alpha) && std::isfinite(rope_ntk_beta),
       "rope beta_slow and beta_fast must be finite");
  need(std::isfinite(rms_norm_eps) && rms_norm_eps > 0.0f, "rms_norm_eps must be finite and positive");
  need(std::isfinite(swiglu_limit) && swiglu_limit > 0.0f, "swiglu_limit must be finite and positive");
  need(static_cast<int>(layer_sliding.size()) == num_layers,
       "layer_types must have one entry per layer");
}

namespace {

// A JSON number as T, refused unless T holds it: integers must be whole numbers in T's range
// (a float such as 4096.0 is accepted), floating-point values finite and in T's range. A plain
// get<T>() would convert 1e30 to int (undefined behaviour) and wrap 2^32 + 32 to 32 (found by
// the config_json fuzz target; fuzz/regressions/config_json).
template <typename T>
T json_number(const nlohmann::json& v, const char* key, const std::string& source) {
  if (!v.is_number()) {
    throw Error(fmt::format("{}: key '{}' has the wrong type ({})", source, key, v.type_name()));
  }
  auto out_of_range = [&] {
    return Error(fmt::format("{}: key '{}' = {} is out of range", source, key, v.dump()));
  };
  if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw out_of_range();
      return static_cast<T>(u);
    }
    if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) {
        throw out_of_range();
      }
      return static_cast<T>(i);
    }
    const double d = v.get<double>();
    if (!(d >= double(std::numeric_limits<T>::min()) && d <= double(std::numeric_limits<T>::max()))) {
      throw out_of_range();
    }
    if (d != std::trunc(d)) {
      throw Error(fmt::format("{}: key '{}' = {} must be a whole number", source, key, v.dump()));
    }
    return static_cast<T>(d);
  } else {
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > double(std::numeric_limits<T>::max())) {
      throw out_of_range();
    }
    return static_cast<T>(d);
  }
}

template <typename T>
T get_first(const nlohmann::json& j, std::initializer_list<const char*> keys, T fallback,
            bool required, const std::string& source) {
  for (const char* k : keys) {
    auto it = j.find(k);
    if (it != j.end() && !it->is_null()) return json_number<T>(*it, k, source);
  }
  if (required) {
    throw Error(fmt::format("{}: missing required key '{}'", source, *keys.begin()),
                "is this a gpt-oss config.json?");
  }
  return fallback;
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(fmt::format("{}: config is not a JSON object", source));
  if (auto it = j.find("model_type"); it != j.end() && it->is_string() && *it != "gpt_oss") {
    throw Error(fmt::format("{}: model_type is '{}', expected 'gpt_oss'", source,
                            it->get<std::string>()));
  }
  ModelConfig c;
  c.num_layers = get_first<int>(j, {"num_hidden_layers"}, 0, true, source);
  c.num_experts = get_first<int>(j, {"num_local_experts", "num_experts"}, 0, true, source);
  c.experts_per_token =
      get_first<int>(j, {"num_experts_per_tok", "experts_per_token"}, 4, false, source);
  c.vocab_size = get_first<int>(j, {"vocab_size"}, 0, true, source);
  c.hidden = get_first<int>(j, {"hidden_size"}, 0, true, source);
  c.intermediate = get_first<int>(j, {"intermediate_size"}, 0, true, source);
  c.num_heads = get_first<int>(j, {"num_attention_heads"}, 0, true, source);
  c.num_kv_heads = get_first<int>(j, {"num_key_value_heads"}, 0, true, source);
  c.head_dim = get_first<int>(j, {"head_dim"}, 64, false, source);
  c.sliding_window = get_first<int>(j, {"sliding_window"}, 128, false, source);
  c.initial_context_length = get_first<int>(j, {"initial_context_length"}, 4096, false, source);
  c.rope_theta = get_first<double>(j, {"rope_theta"}, 150000.0, false, source);
  c.rms_norm_eps = get_first<float>(j, {"rms_norm_eps"}, 1e-5f, false, source);
  c.swiglu_limit = get_first<float>(j, {"swiglu_limit"}, 7.0f, false, source);

  // YaRN parameters: HF keeps them in rope_scaling (or rope_parameters), original/ at top level.
  const nlohmann::json* rope = nullptr;
  for (const char* k : {"rope_scaling", "rope_parameters"}) {
    auto it = j.find(k);
    if (it != j.end() && it->is_object()) rope = &*it;
  }
  if (rope) {
    const std::string rs = source + " rope_scaling";
    if (auto t = rope->find("rope_type"); t != rope->end() && t->is_string() && *t != "yarn") {
      throw Error(fmt::format("{}: rope_type '{}' is not supported (gpt-oss uses yarn)", source,
                              t->get<std::string>()));
    }
    c.rope_scaling_factor = get_first<double>(*rope, {"factor"}, 32.0, false, rs);
    c.rope_ntk_beta = get_first<double>(*rope, {"beta_fast"}, 32.0, false, rs);
    c.rope_ntk_alpha = get_first<double>(*rope, {"beta_slow"}, 1.0, false, rs);
    c.initial_context_length = get_first<int>(*rope, {"original_max_position_embeddings"},
                                              c.initial_context_length, false, rs);
    if (auto it = rope->find("rope_theta"); it != rope->end() && it->is_number()) {
      c.rope_theta = it->get<double>();
    }
  } else {
    c.rope_scaling_factor = get_first<double>(j, {"rope_scaling_factor"}, 32.0, false, source);
    c.rope_ntk_beta = get_first<double>(j, {"rope_ntk_beta"}, 32.0, false, source);
    c.rope_ntk_alpha = get_first<double>(j, {"rope_ntk_alpha"}, 1.0, false, source);
  }
  // Absent: the YaRN-extended length, initial_context_length x factor (clamped: the product of
  // two accepted values can exceed int, and validate() then refuses it by name).
  const double extended = c.initial_context_length * c.rope_scaling_factor;
  c.max_context = get_first<int>(
      j, {"max_position_embeddings"},
      extended >= 1 && extended <= kMaxDimension ? static_cast<int>(extended) : -1, false, source);

  c.layer_sliding = default_layer_pattern(c.num_layers > 0 ? c.num_layers : 0);
  if (auto it = j.find("layer_types"); it != j.end()) {
    if (!it->is_array() || static_cast<int>(it->size()) != c.num_layers) {
      throw Error(fmt::format("{}: layer_types must be an array of {} entries", source,
                              c.num_layers));
    }
    for (int i = 0; i < c.num_layers; ++i) {
      const auto& t = (*it)[static_cast<size_t>(i)];
      if (t == "sliding_attention") {
        c.layer_sliding[i] = 1;
      } else if (t == "full_attention") {
        c.layer_sliding[i] = 0;
      } else {
        throw Error(fmt::format("{}: layer_types[{}] is '{}', expected sliding_attention or "
                                "full_attention", source, i, t.dump()));
      }
    }
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", source, e.what()));
  }
  return c;
}

nlohmann::json ModelConfig::to_hf_json() const {
  nlohmann::json layer_types = nlohmann::json::array();
  for (int i = 0; i < num_layers; ++i) {
    layer_types.push_back(is_sliding(i) ? "sliding_attention" : "full_attention");
  }
  return {
      {"architectures", {"GptOssForCausalLM"}},
      {"attention_bias", true},
      {"attention_dropout", 0.0},
      {"eos_token_id", 200002},
      {"experts_per_token", experts_per_token},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", hidden},
      {"initial_context_length", initial_context_length},
      {"initializer_range", 0.02},
      {"intermediate_size", intermediate},
      {"layer_types", layer_types},
      {"max_position_embeddings", max_context},
      {"model_type", "gpt_oss"},
      {"num_attention_heads", num_heads},
      {"num_experts_per_tok", experts_per_token},
      {"num_hidden_layers", num_layers},
      {"num_key_value_heads", num_kv_heads},
      {"num_local_experts", num_experts},
      {"output_router_logits", false},
      {"pad_token_id", 199999},
      {"quantization_config",
       {{"modules_to_not_convert",
         {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
          "lm_head"}},
        {"quant_method", "mxfp4"}}},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_scaling",
       {{"beta_fast", rope_ntk_beta},
        {"beta_slow", rope_ntk_alpha},
        {"factor", rope_scaling_factor},
        {"original_max_position_embeddings", initial_context_length},
        {"rope_type", "yarn"},
        {"truncate", false}}},
      {"rope_theta", rope_theta},
      {"router_aux_loss_coef", 0.9},
      {"sliding_window", sliding_window},
      {"swiglu_limit", swiglu_limit},
      {"tie_word_embeddings", false},
      {"transformers_version", "4.55.0.dev0"},
      {"use_cache", true},
      {"vocab_size", vocab_size},
  };
}

nlohmann::json ModelConfig::to_original_json() const {
  return {
      {"num_hidden_layers", num_layers},
      {"num_experts", num_experts},
      {"experts_per_token", experts_per_token},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden},
      {"intermediate_size", intermediate},
      {"swiglu_limit", swiglu_limit},
      {"head_dim", head_dim},
      {"num_attention_heads", num_heads},
      {"num_key_value_heads", num_kv_heads},
      {"sliding_window", sliding_window},
      {"initial_context_length", initial_context_length},
      {"rope_theta", rope_theta},
      {"rope_scaling_factor", rope_scaling_factor},
      {"rope_ntk_alpha", rope_ntk_alpha},
      {"rope_ntk_beta", rope_ntk_beta},
  };
}

}  // namespace gptoss
