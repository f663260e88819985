// phases.h — the one phase list of a transformer layer, shared by the megakernel, the CPU
// reference (host/reference/) and the tests that diff their buffers phase by phase.
// Plain header: no GPU includes, usable from .cu (C++17) and .cpp (C++20).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gptoss::mk {

// What each phase reads and writes (the buffer names of gptoss::ref::LayerBuffers):
//   kNormQkvRope  x_in -> t_attn = rmsnorm(x_in) (bf16), qkv = W_qkv t + b (bf16, q and k after
//                 YaRN RoPE); this position's k, v appended to the layer's KV cache
//   kAttention    qkv, KV cache -> attn (bf16): GQA, sinks, 128-key window on sliding layers
//   kOutProj      x_in, attn -> x_attn = x_in + W_o attn + b_o (fp32 residual)
//   kRouter       x_attn -> t_mlp = rmsnorm(x_attn) (bf16), router_logits (fp32); in the fp8
//                 expert mode also t_mlp quantized to e4m3 codes + e8m0 block scales
//   kExpertsUp    router_logits -> top-k experts + softmax weights; t_mlp -> swiglu (bf16)
//   kExpertsDown  swiglu -> expert_out (fp32, bias included), x_out = x_attn + sum_e w_e y_e
enum class Phase : uint8_t {
  kNormQkvRope,
  kAttention,
  kOutProj,
  kRouter,
  kExpertsUp,
  kExpertsDown,
  kCount
};

inline constexpr size_t kNumPhases = static_cast<size_t>(Phase::kCount);

inline constexpr std::array<std::string_view, kNumPhases> kPhaseNames = {
    "norm_qkv_rope", "attention", "out_proj", "router", "experts_up", "experts_down"};
static_assert(kPhaseNames.size() == kNumPhases, "one name per phase");

constexpr std::string_view phase_name(Phase p) { return kPhaseNames[static_cast<size_t>(p)]; }

// After the last layer: the final RMSNorm and the LM head with a fused argmax (its weights stream
// through the same ring as the layers'; `phase_mask` bit kLmHeadPhase runs it).
inline constexpr int kLmHeadPhase = static_cast<int>(kNumPhases);
inline constexpr std::string_view kLmHeadName = "lm_head";
// Every phase of a step: the layer phases then the LM head (index kLmHeadPhase).
constexpr std::string_view step_phase_name(int p) {
  return p == kLmHeadPhase ? kLmHeadName : kPhaseNames[static_cast<size_t>(p)];
}

}  // namespace gptoss::mk
