// decode_options.h — DecodeOptions: what a front end chooses for a decode, parsed once (by the
// CLI) and passed unchanged to whichever backend runs it: the CPU reference (host/reference/) or
// the GPU engine (host/runtime/). Each backend reads the fields that concern it.
#pragma once

#include <string_view>

#include "host/model_config.h"
#include "host/tensor_spec.h"  // WeightFormats
#include "model/expert_mode.h"

namespace gptoss {

struct DecodeOptions {
  ExpertMode experts = ExpertMode::kBf16;
  int num_threads = 0;       // CPU reference threads; 0: one per hardware thread
  int max_context = 0;       // KV capacity in positions; 0: the model's context length
  bool keep_logits = false;  // GPU: write the FP32 logits every step (accuracy tools, tests)
  bool quiet = false;        // GPU: no upload progress on stderr
  // GPU --synthetic only (weights generated in place): the stored formats to generate. With a
  // weights view the formats are the view's (ModelWeights::formats).
  WeightFormats synthetic_formats;
};

// The KV capacity `max_context` asks for on `config` (0: config.max_context). Throws
// gptoss::Error naming both values when it is outside 1..config.max_context. The one check of the
// context length: the CLI, the reference and the engine all call it.
int resolve_max_context(const ModelConfig& config, int max_context);

// "bf16" | "fp8"; throws gptoss::Error naming the value otherwise.
ExpertMode parse_expert_mode(std::string_view name);

// The stored formats of the attention and LM-head weights ("bf16" | "fp8" each): what
// `--attn A --lm-head B` of --synthetic and bench select. Throws naming the flag otherwise.
WeightFormats parse_weight_formats(std::string_view attn, std::string_view lm_head);

}  // namespace gptoss
