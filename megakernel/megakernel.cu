// megakernel.cu — the persistent decode kernel: one cooperative launch runs a whole decode step
// (all layers, the final norm and the LM head with a fused argmax) for one token at batch 1.
// Grid: one CTA of kThreads per SM, all co-resident (the host checks occupancy at launch).
// Per layer the six phases of megakernel/phases.h run back to back with a grid barrier after each
// (device_ops/grid_barrier.cuh; docs/ARCHITECTURE.md gives the reason for every barrier). Weights
// do not wait for barriers: each CTA streams its host-built work list (megakernel/schedule.h)
// through a shared-memory ring filled by the bulk-copy engine (megakernel/weight_ring.cuh), up to
// the ring's depth ahead of the phase being computed, across phase and layer boundaries. The
// phases themselves are in megakernel/phase_*.cuh. With MegakernelArgs::phase_times set, CTA 0
// records a timeline (`gptoss bench tpot --phase-times`).
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
#include "megakernel/weight_ring.cuh"

namespace gptoss::mk {
namespace kernel {


__global__ void __launch_bounds__(kBlockThreads, 1) megakernel_kernel(MegakernelArgs a) {
  extern __shared__ __align__(128) uint8_t smem_raw[];
  Smem s = carve_smem(smem_raw, a);
  const int token = *a.token_in;
  if (token < 0 || token >= a.vocab_size) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      a.control->error = uint32_t(KernelError::kBadToken);
      a.control->value = token;
    }
    return;  // every CTA returns before any copy or barrier: nothing is left in flight or waiting
  }
  if (threadIdx.x < kMaxTopK) {  // valid expert ids even if a profiling run skips experts_up
    s.sel[threadIdx.x] = 0;
    s.sel_w[threadIdx.x] = 0.0f;
  }
  weight_stream_init(a, s);
  __syncthreads();  // the last barrier of the whole block: the roles split here
  if (int(threadIdx.x) >= kThreads) {
    if (threadIdx.x == kThreads) produce_weight_stream(a, s);
    return;
  }
  dev::GridBarrier<true, Consumers> barrier(a.barrier, gridDim.x, a.barrier_cfg);
  const bool timeline = a.phase_times != nullptr && blockIdx.x == 0 && threadIdx.x == 0;
  if (timeline) a.phase_times[kStartSlot] = dev::global_timer_ns();
  WeightStream ws(a, s);
  for (int layer = a.start_layer; layer < a.num_layers; ++layer) {
    const LayerArgs& L = a.layers[layer];
    s.layer = layer;
    const bool from_embed = layer == 0 && a.start_layer == 0;
    for (int p = 0; p < int(kNumPhases); ++p) {
      const bool run = (a.phase_mask >> p) & 1u;
      if (static_cast<Phase>(p) == Phase::kExpertsUp) {
        // The router's logits are published (barrier above): choose the experts, then let the
        // producer stream their tiles (it waits for sel_layer; a skipped experts_up keeps the last
        // choice, so a profiling run's expert phases still stream valid tiles).
        if (run) select_experts(a, s);
        mark(a, s, Mark::kUpSelect);
        if (threadIdx.x == 0) {
          __threadfence_block();  // s.sel before the flag; observed by the producer
          *static_cast<volatile int*>(s.sel_layer) = layer;
        }
      }
      if (run) {
        switch (static_cast<Phase>(p)) {
          case Phase::kNormQkvRope: phase_norm_qkv_rope(a, L, layer, from_embed, token, s, ws); break;
          case Phase::kAttention: phase_attention(a, L, s); break;
          case Phase::kOutProj: phase_out_proj(a, L, layer, from_embed, token, s, ws); break;
          case Phase::kRouter: phase_router(a, L, s); break;
          case Phase::kExpertsUp: phase_experts_up(a, L, layer, s, ws); break;
          case Phase::kExpertsDown: phase_experts_down(a, L, layer, s, ws); break;
          default: break;
        }
      }
      barrier.sync(uint32_t(layer * int(kNumPhases) + p));
      if (timeline) a.phase_times[phase_end_slot(layer, p)] = dev::global_timer_ns();
      if (layer == a.stop_layer && p == a.stop_phase) return;
    }
  }
  if ((a.phase_mask >> kLmHeadPhase) & 1u) phase_lm_head(a, s, ws);
}

}  // namespace kernel

size_t megakernel_smem_bytes(const MegakernelArgs& a) { return kernel::smem_layout(a).total; }

size_t megakernel_smem_bytes_without_ring(const MegakernelArgs& a) {
  MegakernelArgs none = a;
  none.ring.stages = 0;
  // The mbarriers (8 B per stage) count as ring; the rest is fixed.
  return kernel::smem_layout(none).total;
}

std::string megakernel_shape_problem(const MegakernelArgs& a, int grid) {
  using namespace kernel;
  if (a.head_dim != kHeadDim) return "head_dim must be 64";
  if (a.num_kv_heads < 1 || a.num_heads % a.num_kv_heads != 0 || a.num_heads / a.num_kv_heads > kMaxGroup) {
    return "at most 8 query heads per KV head";
  }
  if (a.experts_per_token > kMaxTopK) return "at most 4 experts per token";
  if (a.num_experts > kMaxExperts) return "at most 256 experts";
  if (a.hidden % kMxBlock != 0 || a.intermediate % kMxBlock != 0) {
    return "hidden and intermediate must be multiples of 32";
  }
  if (grid <= 0) return {};
  if (a.ring.stages < 2 || a.ring.slot_bytes <= 0 || a.ring.slot_bytes % 128 != 0) {
    return "the weight ring is not planned (plan_ring)";
  }
  if (2 * a.ring.qkv_pairs_per_slot > kMaxSlotRows || a.ring.out_rows_per_slot > kMaxSlotRows ||
      a.ring.lm_rows_per_slot > kMaxSlotRows) {
    return "more rows per ring slot than the slot GEMV keeps";
  }
  if (a.max_splits < 1 || a.max_splits > kMaxAttentionSplits) {
    return "1 to " + std::to_string(kMaxAttentionSplits) + " attention splits per KV head";
  }
  if (grid < a.num_kv_heads * a.max_splits) return "fewer CTAs than KV heads x attention splits";
  // The router's partial sums share the activation region with its input vector.
  const int act = act_floats(a.hidden, a.num_heads * a.head_dim, a.experts_per_token, a.intermediate);
  const int router_need = a.hidden + ((a.num_experts + grid - 1) / grid) * kKSplit + 4;
  if (router_need > act) return "a grid this small leaves too many router rows per CTA";
  return {};
}

const void* megakernel_entry() { return reinterpret_cast<const void*>(kernel::megakernel_kernel); }

int megakernel_threads() { return kernel::kBlockThreads; }

}  // namespace gptoss::mk
