#include "host/decode_options.h"

#include "host/error.h"

namespace gptoss {

int resolve_max_context(const ModelConfig& config, int max_context) {
  if (max_context == 0) return config.max_context;
  if (max_context < 1 || max_context > config.max_context) {
    throw Error(fmt::format("max_context {} is outside 1..{} (the model's context length)",
                            max_context, config.max_context));
  }
  return max_context;
}

ExpertMode parse_expert_mode(std::string_view name) {
  ExpertMode mode{};
  if (!expert_mode_from_name(name, &mode)) {
    throw Error(fmt::format("unknown expert mode '{}'", name), "the expert modes are bf16 and fp8");
  }
  return mode;
}

WeightFormats parse_weight_formats(std::string_view attn, std::string_view lm_head) {
  WeightFormats f;
  if (!weight_format_from_name(attn, &f.attn)) {
    throw Error(fmt::format("--attn {}: unknown format", attn), "use bf16 or fp8");
  }
  if (!weight_format_from_name(lm_head, &f.lm_head)) {
    throw Error(fmt::format("--lm-head {}: unknown format", lm_head), "use bf16 or fp8");
  }
  return f;
}

}  // namespace gptoss
