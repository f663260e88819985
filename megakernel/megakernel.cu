// megakernel.cu — the persistent decode kernel: one cooperative launch runs a whole decode step
// (all layers, the final norm and the LM head with a fused argmax) for one token at batch 1.
// Grid: one CTA of kThreads per SM, all co-resident (the host checks occupancy at launch:
// host/runtime/megakernel_launch.cpp). Per layer the six phases of megakernel/phases.h run back
// to back with a grid barrier after each (device_ops/grid_barrier.cuh; docs/ARCHITECTURE.md gives
// the reason for every barrier); each phase is in megakernel/phase_<name>.cuh. Work inside a phase
// is split so that every SM streams about the same number of weight bytes (contiguous row ranges
// per CTA for the BF16 projections, 16-row MXFP4 tiles on tensor cores for the experts); CTAs
// recompute cheap things (RMSNorm statistics, the router's top-k) instead of synchronising for
// them. With MegakernelArgs::phase_times set, CTA 0 records a timeline (`bench tpot --phase-times`).
// This file includes no host header: it answers the host's questions with plain values.
#include "megakernel/megakernel.h"

#include <string>

#include "device_ops/grid_barrier.cuh"
#include "megakernel/kernel_common.cuh"
#include "megakernel/phase_attention.cuh"
#include "megakernel/phase_experts.cuh"
#include "megakernel/phase_lm_head.cuh"
#include "megakernel/phase_out_proj.cuh"
#include "megakernel/phase_qkv.cuh"
#include "megakernel/phase_router.cuh"

namespace gptoss::mk {
namespace kernel {

__global__ void __launch_bounds__(kThreads, 1) megakernel_kernel(MegakernelArgs a) {
  extern __shared__ float4 smem_raw[];
  Smem s = carve_smem(reinterpret_cast<float*>(smem_raw), a);
  if (threadIdx.x < kMaxTopK) {  // valid expert ids even if a profiling run skips experts_up
    s.sel[threadIdx.x] = 0;
    s.sel_w[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  dev::GridBarrier<> barrier(a.barrier, gridDim.x, a.barrier_cfg);
  const int token = *a.token_in;
  if (token < 0 || token >= a.vocab_size) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      a.control->error = uint32_t(KernelError::kBadToken);
      a.control->value = token;
    }
    return;  // every CTA returns: no barrier is left waiting
  }
  const bool timeline = a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0;
  if (timeline) a.phase_times[kStartSlot] = dev::global_timer_ns();
  for (int layer = a.start_layer; layer < a.num_layers; ++layer) {
    const LayerArgs& L = a.layers[layer];
    s.layer = layer;
    const bool from_embed = layer == 0 && a.start_layer == 0;
    for (int p = 0; p < int(kNumPhases); ++p) {
      switch (static_cast<Phase>((a.phase_mask >> p) & 1u ? p : int(kNumPhases))) {
        case Phase::kNormQkvRope: phase_norm_qkv_rope(a, L, from_embed, token, s); break;
        case Phase::kAttention: phase_attention(a, L, s); break;
        case Phase::kOutProj: phase_out_proj(a, L, from_embed, token, s); break;
        case Phase::kRouter: phase_router(a, L, s); break;
        case Phase::kExpertsUp: phase_experts_up(a, L, s); break;
        case Phase::kExpertsDown: phase_experts_down(a, L, s); break;
        default: break;
      }
      barrier.sync(uint32_t(layer * int(kNumPhases) + p));
      if (timeline) a.phase_times[phase_end_slot(layer, p)] = dev::global_timer_ns();
      if (layer == a.stop_layer && p == a.stop_phase) return;
    }
  }
  if ((a.phase_mask >> kLmHeadPhase) & 1u) phase_lm_head(a, s);
}

}  // namespace kernel

size_t megakernel_smem_bytes(const MegakernelArgs& a) {
  using namespace kernel;
  return sizeof(float) * (act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token,
                                     a.intermediate) +
                          4 * kWarps + 2 * kMaxTopK + 4);
}

std::string megakernel_shape_problem(const MegakernelArgs& a, int grid) {
  using namespace kernel;
  if (a.head_dim != kHeadDim) return "head_dim must be 64";
  if (a.num_kv_heads < 1 || a.num_heads % a.num_kv_heads != 0 ||
      a.num_heads / a.num_kv_heads > kMaxGroup) {
    return "at most 8 query heads per KV head";
  }
  if (a.experts_per_token > kMaxTopK) return "at most 4 experts per token";
  if (a.num_experts > kMaxExperts) return "at most 256 experts";
  if (a.hidden % kMxBlock != 0 || a.intermediate % kMxBlock != 0) {
    return "hidden and intermediate must be multiples of 32";
  }
  if ((a.num_heads * kHeadDim) % 8 != 0) return "q width must be a multiple of 8";
  if (grid <= 0) return {};
  // cta_gemv_bf16's partial sums share the activation region with the input vector.
  const int act = act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token, a.intermediate);
  const int qkv_pairs = (a.num_heads + 2 * a.num_kv_heads) * kHeadDim / 2;
  const int qkv_need = a.hidden + 2 * ((qkv_pairs + grid - 1) / grid) * kKSplit + 4;
  const int out_need = a.num_heads * a.head_dim + ((a.hidden + grid - 1) / grid) * kKSplit + 4;
  if (qkv_need > act || out_need > act) {
    return "a grid of " + std::to_string(grid) + " CTAs is too small for this model's projections "
           "(shared memory)";
  }
  if (a.max_splits < 1 || a.max_splits > kMaxAttentionSplits) {
    return std::to_string(a.max_splits) + " attention splits per KV head (1 to " +
           std::to_string(kMaxAttentionSplits) + " supported)";
  }
  if (grid < a.num_kv_heads * a.max_splits) {
    return "grid " + std::to_string(grid) + " < " + std::to_string(a.num_kv_heads) +
           " KV heads x " + std::to_string(a.max_splits) + " splits";
  }
  return {};
}

const void* megakernel_entry() { return reinterpret_cast<const void*>(kernel::megakernel_kernel); }

int megakernel_threads() { return kernel::kThreads; }

}  // namespace gptoss::mk
