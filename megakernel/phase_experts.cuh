// phase_experts.cuh — the MoE phases: kExpertsUp (mlp1 of the token's top-k experts with the
// clamped SwiGLU) and kExpertsDown (mlp2, the weighted sum over experts and the residual add), as
// MXFP4 tensor-core GEMVs (device_ops/gemv_mxfp4.cuh) whose weights each warp streams through its
// copy ring (device_ops/mxfp4_copy_ring.cuh) kMxRingSlots - 1 steps ahead. Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"
#include "device_ops/mxfp4_copy_ring.cuh"
#include "megakernel/phase_router.cuh"

namespace gptoss::mk::kernel {

// Stages n k-wide input vectors (floats in shared memory at s.act, bf16-representable) for the
// MXFP4 GEMV: with fp8 each 32-block is quantized first (E4M3 codes + E8M0 scale, the encoding
// of docs/ARCHITECTURE.md, bit-exact with the CPU reference; only the mlp1 input is quantized in
// `--experts fp8`). Block scope; syncs on exit.
__device__ void stage_expert_inputs(const Smem& s, bool fp8, int k, int n) {
  const ExpertSmem e = expert_smem(k, n);
  uint8_t* base = reinterpret_cast<uint8_t*>(s.act);
  if (fp8) {
    for (int v = 0; v < n; ++v) {
      dev::block_quantize_fp8(base + e.codes + v * k, base + e.scales + v * (k / kMxBlock),
                              s.act + v * k, k);
    }
    __syncthreads();
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_fp8(base + e.staged + v * e.staged_stride, base + e.codes + v * k,
                                       base + e.scales + v * (k / kMxBlock), k);
    }
  } else {
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_bf16(base + e.staged + v * e.staged_stride, s.act + v * k, k);
    }
  }
}

// This warp's slot i (mod kMxRingSlots) of the copy ring.
__device__ __forceinline__ uint8_t* ring_slot(const Smem& s, int i) {
  const int warp = int(threadIdx.x) >> 5;
  return s.ring + (warp * kMxRingSlots + i % kMxRingSlots) * dev::kMxfp4RingSlotBytes;
}

// Step `step0` (the quad's first block; the lane's is step0 + tig) of a 16-row tile, with the
// lane's weights read back from ring slot `slot`: bf16 accumulates into d, fp8 into acc_a/acc_b.
__device__ __forceinline__ void expert_ring_step(float (&d)[4], float& acc_a, float& acc_b,
                                                 bool fp8, const uint8_t* slot,
                                                 const dev::Mxfp4Matrix& w,
                                                 const uint8_t* staged, int row0, int step0,
                                                 int kb_end) {
  const int lane = threadIdx.x & 31, tig = lane & 3, row_a = row0 + (lane >> 2);
  uint4 wa, wb;
  uint32_t sa, sb;
  dev::mxfp4_ring_read(slot, w, row0, step0 + tig, kb_end, wa, wb, sa, sb);
  if (fp8) {
    const float* factors =
        reinterpret_cast<const float*>(staged + (w.num_blocks + 1) * dev::kStagedFp8BlockBytes);
    dev::detail::mxfp4_step_fp8(acc_a, acc_b, wa, wb, sa | (sb << 8), staged, factors, step0,
                                kb_end, w.num_blocks, row_a < w.rows, row_a + 8 < w.rows);
  } else {
    dev::detail::mxfp4_step_bf16(d, wa, wb, sa, sb, staged, step0 + tig, kb_end, w.num_blocks);
  }
}

// The tile's two row sums (every lane of a quad) after its steps.
__device__ __forceinline__ void expert_ring_finish(float (&acc)[2], bool fp8, const float (&d)[4],
                                                   float acc_a, float acc_b) {
  if (fp8) {
    dev::detail::mxfp4_fp8_finish(acc, acc_a, acc_b);
  } else {
    acc[0] = d[0];  // B is the same in all 8 columns, so every column holds the row sums
    acc[1] = d[2];
  }
}

// Phase kExpertsUp: every CTA selects the experts and stages t_mlp (left in s.act by the router
// phase) for the tensor-core GEMV (FP8-quantized in that mode); then it computes 16-row tiles of the
// chosen experts' mlp1 (8 interleaved gate/up pairs) and applies the clamped SwiGLU.
__device__ void phase_experts_up(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  select_experts(a, s);
  mark(a, s, Mark::kUpSelect);
  const int inter = a.intermediate, mlp1 = 2 * inter, nb = a.hidden / kMxBlock;
  const int tiles_per_expert = mlp1 / dev::kMxfp4TileRows;  // inter % 32 == 0 (checked at launch)
  const int tiles = a.experts_per_token * tiles_per_expert;
  // CTA b owns tiles b, b + grid, ... (so every SM gets a share) and computes them in rounds of
  // kUpTilesPerRound tiles, each tile's K range split over kUpSplits warps so that all warps are
  // busy; the partial sums meet in shared memory and are added in split order.
  const int my_tiles = tiles > int(blockIdx.x) ? (tiles - 1 - int(blockIdx.x)) / int(gridDim.x) + 1 : 0;
  const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int warp = threadIdx.x >> 5, slot = warp / kUpSplits, split = warp % kUpSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kUpSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kUpSplits * dev::kMxfp4BlocksPerStep);
  // This warp's weight steps, in order: round r, step t of its K share of tile r * rounds + slot.
  const int step_count = kb_end > kb_begin ? (kb_end - kb_begin + dev::kMxfp4BlocksPerStep - 1) /
                                                 dev::kMxfp4BlocksPerStep
                                           : 0;
  const int rounds = (my_tiles + kUpTilesPerRound - 1) / kUpTilesPerRound;
  const auto matrix = [&](int j, int* r, int* row0) {
    const int t = int(blockIdx.x) + j * int(gridDim.x);
    *r = t / tiles_per_expert;
    *row0 = (t % tiles_per_expert) * dev::kMxfp4TileRows;
    const size_t expert = size_t(s.sel[*r]);
    return dev::Mxfp4Matrix{L.mlp1_blocks + expert * mlp1 * (size_t(nb) * dev::kMxfp4BlockBytes),
                            L.mlp1_scales + expert * mlp1 * size_t(nb), mlp1, nb};
  };
  // Weights do not depend on the activations: the copies start before the input is staged and
  // run kMxRingSlots - 1 steps ahead of the math, across rounds.
  const auto issue = [&](int i) {
    if (i < rounds * step_count) {
      const int round = i / step_count, j = round * kUpTilesPerRound + slot;
      if (j < my_tiles) {
        int r, row0;
        const dev::Mxfp4Matrix w = matrix(j, &r, &row0);
        dev::mxfp4_ring_issue(ring_slot(s, i), w, row0,
                              kb_begin + (i - round * step_count) * dev::kMxfp4BlocksPerStep + tig,
                              kb_end);
      }
    }
    dev::copy_async_commit();
  };
  for (int i = 0; i < kMxRingSlots - 1; ++i) issue(i);
  // t_mlp = rmsnorm(x_attn) is still in s.act: the router phase computed it in every CTA.
  mark(a, s, Mark::kUpNorm);
  stage_expert_inputs(s, a.experts_fp8, a.hidden, 1);
  mark(a, s, Mark::kUpStage);
  const uint8_t* staged = reinterpret_cast<const uint8_t*>(s.act) + expert_smem(a.hidden, 1).staged;
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + expert_smem(a.hidden, 1).red);
  for (int round = 0; round < rounds; ++round) {
    const int j = round * kUpTilesPerRound + slot;
    int r = 0, row0 = 0;
    const dev::Mxfp4Matrix w = j < my_tiles ? matrix(j, &r, &row0) : dev::Mxfp4Matrix{};
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc_a = 0.0f, acc_b = 0.0f;
    for (int t = 0; t < step_count; ++t) {
      const int i = round * step_count + t;
      issue(i + kMxRingSlots - 1);  // into the slot step i - 1 used
      dev::copy_async_wait_prior<kMxRingSlots - 1>();
      if (j < my_tiles) {  // warp-uniform
        expert_ring_step(d, acc_a, acc_b, a.experts_fp8, ring_slot(s, i), w, staged, row0,
                         kb_begin + t * dev::kMxfp4BlocksPerStep, kb_end);
      }
    }
    if (j < my_tiles) {
      float acc[2];
      expert_ring_finish(acc, a.experts_fp8, d, acc_a, acc_b);
      if (tig == 0) {
        red[warp * dev::kMxfp4TileRows + gid] = acc[0];
        red[warp * dev::kMxfp4TileRows + gid + 8] = acc[1];
      }
    }
    __syncthreads();
    // One thread per (tile, channel): rows 2c (gate) and 2c + 1 (up) of the tile.
    constexpr int kChannels = dev::kMxfp4TileRows / 2;
    const int sl = int(threadIdx.x) / kChannels, c = int(threadIdx.x) % kChannels;
    const int jj = round * kUpTilesPerRound + sl;
    if (sl < kUpTilesPerRound && jj < my_tiles) {
      const int t = int(blockIdx.x) + jj * int(gridDim.x);
      const int rr = t / tiles_per_expert, rrow0 = (t % tiles_per_expert) * dev::kMxfp4TileRows;
      const size_t expert = size_t(s.sel[rr]);
      float gate = 0.0f, up = 0.0f;
      for (int q = 0; q < kUpSplits; ++q) {
        gate += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c];
        up += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c + 1];
      }
      const size_t bias = expert * mlp1 + rrow0 + 2 * c;
      gate += bf16_bits_to_float(L.mlp1_bias[bias]);
      up += bf16_bits_to_float(L.mlp1_bias[bias + 1]);
      a.swiglu_out[rr * inter + rrow0 / 2 + c] = float_to_bf16_bits(swiglu(gate, up, a.swiglu_limit));
    }
    __syncthreads();
  }
  dev::copy_async_wait_prior<0>();  // only empty groups can be left
  mark(a, s, Mark::kUpGemv);
}

// Phase kExpertsDown: CTA b takes 16-row tiles b, b + grid, ... of the hidden dimension; its
// warps split as (expert rank, K split) and compute y_e = W2_e a_e over their share of K; the
// partial sums meet in shared memory and x[n] += sum_e w_e (y_e[n] + b2_e[n]) in rank order.
__device__ void phase_experts_down(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int inter = a.intermediate, k = a.experts_per_token, nb = inter / kMxBlock;
  const int tiles = (a.hidden + dev::kMxfp4TileRows - 1) / dev::kMxfp4TileRows;
  if (int(blockIdx.x) >= tiles) return;  // nothing to do (tiny shapes on a big grid)
  const int lane = threadIdx.x & 31, tig = lane & 3;
  const int warp = threadIdx.x >> 5, r = warp / kDownSplits, split = warp % kDownSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kDownSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kDownSplits * dev::kMxfp4BlocksPerStep);
  const int step_count = r < k && kb_end > kb_begin
                             ? (kb_end - kb_begin + dev::kMxfp4BlocksPerStep - 1) /
                                   dev::kMxfp4BlocksPerStep
                             : 0;
  const int rounds = (tiles - 1 - int(blockIdx.x)) / int(gridDim.x) + 1;
  const size_t expert = r < k ? size_t(s.sel[r]) : 0;
  const dev::Mxfp4Matrix w{L.mlp2_blocks + expert * a.hidden * (size_t(nb) * dev::kMxfp4BlockBytes),
                           L.mlp2_scales + expert * a.hidden * size_t(nb), a.hidden, nb};
  // The copies of this warp's first steps start before the inputs are copied and staged.
  const auto issue = [&](int i) {
    if (i < rounds * step_count) {
      const int round = i / step_count;
      const int row0 = (int(blockIdx.x) + round * int(gridDim.x)) * dev::kMxfp4TileRows;
      dev::mxfp4_ring_issue(ring_slot(s, i), w, row0,
                            kb_begin + (i - round * step_count) * dev::kMxfp4BlocksPerStep + tig,
                            kb_end);
    }
    dev::copy_async_commit();
  };
  for (int i = 0; i < kMxRingSlots - 1; ++i) issue(i);
  bf16_act_to_smem(s.act, a.swiglu_out, k * inter);
  __syncthreads();
  mark(a, s, Mark::kDownCopy);
  stage_expert_inputs(s, false, inter, k);  // BF16 input in both modes
  mark(a, s, Mark::kDownStage);
  const ExpertSmem e = expert_smem(inter, k);
  const uint8_t* staged = reinterpret_cast<const uint8_t*>(s.act) + e.staged + r * e.staged_stride;
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + e.red);
  const int gid = lane >> 2;
  for (int round = 0; round < rounds; ++round) {
    const int row0 = (int(blockIdx.x) + round * int(gridDim.x)) * dev::kMxfp4TileRows;
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc_a = 0.0f, acc_b = 0.0f;
    for (int t = 0; t < step_count; ++t) {
      const int i = round * step_count + t;
      issue(i + kMxRingSlots - 1);  // into the slot step i - 1 used
      dev::copy_async_wait_prior<kMxRingSlots - 1>();
      expert_ring_step(d, acc_a, acc_b, false, ring_slot(s, i), w, staged, row0,
                       kb_begin + t * dev::kMxfp4BlocksPerStep, kb_end);
    }
    if (r < k && tig == 0) {
      red[warp * dev::kMxfp4TileRows + gid] = d[0];
      red[warp * dev::kMxfp4TileRows + gid + 8] = d[2];
    }
    __syncthreads();
    const int row = row0 + int(threadIdx.x);
    if (threadIdx.x < dev::kMxfp4TileRows && row < a.hidden) {
      float moe = 0.0f;
      for (int q = 0; q < k; ++q) {
        float y = 0.0f;
        for (int p = 0; p < kDownSplits; ++p) y += red[(q * kDownSplits + p) * dev::kMxfp4TileRows + threadIdx.x];
        y += bf16_bits_to_float(L.mlp2_bias[size_t(s.sel[q]) * a.hidden + row]);
        moe = fmaf(s.sel_w[q], y, moe);
      }
      a.x[row] = ld_act(a.x + row) + moe;
    }
    __syncthreads();
  }
  dev::copy_async_wait_prior<0>();  // only empty groups can be left
  mark(a, s, Mark::kDownGemv);
}

}  // namespace gptoss::mk::kernel
