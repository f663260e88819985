// bytes_per_token.h — the bytes one batch-1 decode token must read (DESIGN.md section 7,
// FACTS.md section 5.2): every non-expert weight once, the chosen experts' MXFP4 blocks, scales
// and biases, the LM head, one embedding row; plus the KV cache at context T.
#pragma once

#include <cstdint>

#include "host/model_config.h"
#include "host/tensor_spec.h"  // WeightFormats

namespace gptoss::bench {

// Weights read per token with the stored formats (all BF16: 20b 3,708,089,088 B, 120b
// 5,002,907,904 B). FP8 attention / LM head: one byte per weight plus a 4-byte scale per row.
uint64_t weight_bytes_per_token(const ModelConfig& config, const WeightFormats& formats = {});
// KV bytes read by a token attending to `context` positions (its own included):
// sliding layers min(T, window) keys, full layers T keys, each key+value 2 * kv_dim BF16.
uint64_t kv_bytes_per_token(const ModelConfig& config, uint64_t context);

}  // namespace gptoss::bench
