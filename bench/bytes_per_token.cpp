#include "bench/bytes_per_token.h"

#include <algorithm>

namespace gptoss::bench {

namespace {

// A dense [rows, cols] weight: BF16, or E4M3 codes plus one FP32 scale per row.
uint64_t dense_bytes(uint64_t rows, uint64_t cols, archive::WeightFormat f) {
  return f == archive::WeightFormat::kFP8 ? rows * cols + 4 * rows : 2 * rows * cols;
}

}  // namespace

uint64_t weight_bytes_per_token(const ModelConfig& c, const WeightFormats& formats) {
  const uint64_t H = c.hidden, I = c.intermediate, E = c.num_experts, k = c.experts_per_token;
  const uint64_t q = c.q_dim(), qkv = c.qkv_dim();
  const uint64_t attention = dense_bytes(qkv, H, formats.attn) + dense_bytes(H, q, formats.attn) +
                             2 * (qkv + H + uint64_t(c.num_heads));
  const uint64_t norms = 2 * 2 * H;
  const uint64_t router = 2 * (E * H + E);
  const uint64_t mlp1 = 2 * I * (H / 2 + H / 32) + 2 * (2 * I);
  const uint64_t mlp2 = H * (I / 2 + I / 32) + 2 * H;
  const uint64_t per_layer = attention + norms + router + k * (mlp1 + mlp2);
  const uint64_t global = dense_bytes(uint64_t(c.vocab_size), H, formats.lm_head) + 2 * H + 2 * H;
  return per_layer * uint64_t(c.num_layers) + global;
}

uint64_t kv_bytes_per_token(const ModelConfig& c, uint64_t context) {
  const uint64_t per_key = 2ull * 2ull * uint64_t(c.kv_dim());
  uint64_t total = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    const uint64_t keys = c.is_sliding(l) ? std::min<uint64_t>(context, c.sliding_window) : context;
    total += keys * per_key;
  }
  return total;
}

}  // namespace gptoss::bench
