// kernel_args.h — MegakernelArgs: everything one decode step of the persistent kernel reads and
// writes, as a POD of device pointers, dimensions and step inputs. Shared by the kernel
// (megakernel.cu), the host engine (host/runtime/engine.cpp) and the GPU tests. No vendor headers: BF16
// tensors are passed as uint16_t bit patterns and reinterpreted on the device; FP8 weights (E4M3
// codes, model/fp8_rows.h) as bytes beside their per-row FP32 scales.
#pragma once

#include <cstdint>

#include "device_ops/grid_barrier_state.h"
#include "megakernel/control.h"

namespace gptoss::mk {

// One layer's weights (canonical layout, host/tensor_spec.h) and KV cache.
struct LayerArgs {
  const uint16_t* attn_norm;      // [hidden] bf16
  const void* qkv_weight;         // [qkv_dim, hidden] rows q | k | v: bf16, or e4m3 codes
  const float* qkv_scale;         // [qkv_dim] per-row scales of e4m3 codes; null = bf16
  const uint16_t* qkv_bias;       // [qkv_dim] bf16
  const uint16_t* sinks;          // [num_heads] bf16
  const void* out_weight;         // [hidden, q_dim] bf16 or e4m3
  const float* out_scale;         // [hidden]; null = bf16
  const uint16_t* out_bias;       // [hidden] bf16
  const uint16_t* mlp_norm;       // [hidden] bf16
  const uint16_t* router_weight;  // [E, hidden] bf16
  const uint16_t* router_bias;    // [E] bf16
  const uint8_t* mlp1_blocks;     // [E, 2I, hidden/32, 16] e2m1 pairs (gate/up rows interleaved)
  const uint8_t* mlp1_scales;     // [E, 2I, hidden/32] e8m0
  const uint16_t* mlp1_bias;      // [E, 2I] bf16
  const uint8_t* mlp2_blocks;     // [E, hidden, I/32, 16]
  const uint8_t* mlp2_scales;     // [E, hidden, I/32]
  const uint16_t* mlp2_bias;      // [E, hidden] bf16
  uint16_t* k_cache;              // [num_kv_heads, kv_capacity, head_dim] bf16, after RoPE
  uint16_t* v_cache;              // [num_kv_heads, kv_capacity, head_dim] bf16
  int kv_capacity;                // sliding layers: sliding_window (a ring); full: max_context
  int sliding;                    // 1 = 128-token window layer
};

struct MegakernelArgs {
  // Model dimensions (from ModelConfig; the kernel checks them against its compiled tiles).
  int num_layers, hidden, num_heads, num_kv_heads, head_dim, num_experts, experts_per_token;
  int intermediate, vocab_size, sliding_window, max_context;
  float rms_norm_eps, swiglu_limit;

  const uint16_t* embed;       // [vocab, hidden] bf16
  const uint16_t* final_norm;  // [hidden] bf16
  const void* lm_head;         // [vocab, hidden] bf16 or e4m3 codes
  const float* lm_head_scale;  // [vocab] per-row scales of e4m3 codes; null = bf16
  const LayerArgs* layers;     // [num_layers] (device memory)
  const float* rope_table;     // [max_context, head_dim]: cos[head_dim/2] then sin[head_dim/2], C folded in

  // Step inputs.
  const int32_t* token_in;  // the token at position `pos` (device memory)
  int pos;

  // Activations (device memory, written by the kernel).
  float* x;                // [hidden] fp32 residual stream
  uint16_t* qkv;           // [qkv_dim] bf16, q and k after RoPE
  float* attn_partial;     // [num_kv_heads, max_splits, group, head_dim + 2] split-KV states
  uint16_t* attn_out;      // [q_dim] bf16
  float* router_logits;    // [E] fp32
  uint16_t* swiglu_out;    // [experts_per_token, intermediate] bf16
  int32_t* expert_ids;     // [experts_per_token] chosen experts (debug/test visibility)
  float* expert_weights;   // [experts_per_token]
  float* cta_best_val;     // [grid] per-CTA LM-head maximum
  int32_t* cta_best_idx;   // [grid]
  int32_t* token_out;      // the argmax token
  float* logits;           // [vocab] fp32, written only when non-null

  // Synchronisation state (device memory, zeroed once at allocation).
  GridBarrierState* barrier;     // the grid barrier (device_ops/grid_barrier.cuh), zeroed once
  GridBarrierConfig barrier_cfg; // debug: spin cap with hang report, jitter (random nanosleep)
  uint32_t* counters;      // [num_kv_heads + 1] split-KV merge counters, LM-head counter
  ControlBlock* control;

  // Options.
  int max_splits;          // attention KV splits per KV head (<= grid / num_kv_heads)
  int experts_fp8;         // 1: expert input quantized to E4M3 + E8M0 per 32 (docs/ARCHITECTURE.md)
  int stop_layer;          // debug: return after (stop_layer, stop_phase); -1 = run to the end
  int stop_phase;
  int start_layer;         // debug: begin at this layer with x already holding its input
  uint32_t phase_mask;     // profiling: bit p runs phase p (bit kNumPhases: the LM head); the
                           // barriers run regardless, so skipping a phase measures its cost
  uint64_t* phase_times;   // profiling, null = off: CTA 0 records the global timer (ns) at its
                           // start [0] and when the barrier after (layer, phase) releases it
                           // [1 + layer * kNumPhases + phase]; the CTA that reduces the LM head
                           // records its end [1 + num_layers * kNumPhases]
};

}  // namespace gptoss::mk
