// prefill.h — batched prefill: a chunk of T prompt tokens at positions [first_pos, first_pos + T)
// through every layer with separate kernels (not the persistent decode kernel), leaving each
// layer's K and V in the decode kernel's cache (mk::LayerArgs layout; ring slot p % kv_capacity on
// sliding layers). No final norm and no LM head: the engine runs the last prompt token through the
// decode kernel, which produces the logits (GpuEngine::prefill). Plain header: no vendor names.
#pragma once

#include <cstdint>
#include <string>

#include "megakernel/kernel_args.h"

namespace gptoss::prefill {

// Model dimensions the kernels read (from ModelConfig through the engine).
struct PrefillDims {
  int num_layers, hidden, num_heads, num_kv_heads, head_dim, num_experts, experts_per_token;
  int intermediate, sliding_window;
  float rms_norm_eps, swiglu_limit;
  int qkv_dim() const { return (num_heads + 2 * num_kv_heads) * head_dim; }
  int q_dim() const { return num_heads * head_dim; }
};

// Why these dimensions cannot run through the prefill kernels; empty when they can.
std::string prefill_shape_problem(const PrefillDims& d);

// Device scratch for chunks of up to max_tokens tokens, carved from one allocation of
// prefill_scratch_bytes() bytes (carve_prefill_scratch). T below = the chunk's token count.
struct PrefillScratch {
  int max_tokens = 0;
  int32_t* tokens;      // [T] the chunk's token ids
  float* x;             // [T, hidden] fp32 residual stream
  uint16_t* t;          // [T, hidden] bf16 rmsnorm output (attention input, then router input)
  uint16_t* t_experts;  // [T, hidden] bf16 expert input: t, or t through E4M3 + E8M0 (--experts fp8)
  uint16_t* qkv;        // [T, qkv_dim] bf16, q and k after RoPE
  uint16_t* attn;       // [T, q_dim] bf16 attention output
  float* router;        // [T, num_experts] fp32 router logits
  int32_t* expert_ids;  // [T, k] chosen experts, descending logit
  float* expert_w;      // [T, k] softmax over the chosen k
  int32_t* slots;       // [T * k] slot = token * k + rank, grouped by expert
  int32_t* tiles;       // [max_moe_tiles(T) * 3] (expert, first slot index, slot count <= 64)
  int32_t* num_tiles;   // [1]
  uint16_t* swiglu;     // [T * k, intermediate] bf16, by slot
  float* y;             // [T * k, hidden] fp32 expert outputs by slot (bias included); also the
                        // pre-RoPE fp32 qkv [T, qkv_dim] earlier in the layer
};

uint64_t prefill_scratch_bytes(const PrefillDims& d, int max_tokens);
PrefillScratch carve_prefill_scratch(void* base, const PrefillDims& d, int max_tokens);

// What stays fixed between chunks: the layers' weights and caches (host array of the device
// pointers the decode kernel uses), the embedding table, the RoPE table, the expert path.
struct PrefillModel {
  const mk::LayerArgs* layers;  // [num_layers], host memory
  const uint16_t* embed;        // [vocab, hidden] bf16
  const float* rope_table;      // [max_context, head_dim]: C cos then C sin (kernel_args.h)
  int experts_fp8;              // 1: the expert input through E4M3 + E8M0 per 32 (as the decode kernel)
};

// Runs `count` tokens (already in scratch.tokens) at positions [first_pos, first_pos + count)
// through every layer; 1 <= count <= scratch.max_tokens, first_pos + count <= max_context, and
// positions before first_pos are already in the caches. Launches on the default stream and
// returns without synchronizing; launch errors throw gpu::GpuError.
void prefill_chunk(const PrefillDims& d, const PrefillModel& m, const PrefillScratch& s, int count,
                   int first_pos);

}  // namespace gptoss::prefill
