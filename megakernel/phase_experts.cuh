// phase_experts.cuh — the MoE phases: kExpertsUp (mlp1 of the token's top-k experts with the
// clamped SwiGLU) and kExpertsDown (mlp2, the weighted sum over experts and the residual add), as
// MXFP4 tensor-core GEMVs (device_ops/gemv_mxfp4.cuh). Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"
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

// One 16-row tile of an MXFP4 matrix against staged activations, blocks [kb_begin, kb_end):
// acc[0] = row row0 + lane/4, acc[1] = row row0 + lane/4 + 8, in every lane of a quad.
__device__ __forceinline__ void expert_tile(float (&acc)[2], bool fp8, const dev::Mxfp4Matrix& w,
                                            const uint8_t* staged, int row0, int kb_begin,
                                            int kb_end) {
  if (fp8) {
    dev::warp_gemv_mxfp4_fp8<kMxUnroll>(acc, w, staged, row0, kb_begin, kb_end);
  } else {
    dev::warp_gemv_mxfp4_bf16<kMxUnroll>(acc, w, staged, row0, kb_begin, kb_end);
  }
}

// Phase kExpertsUp: every CTA selects the experts and stages t_mlp (left in s.act by the router
// phase) for the tensor-core GEMV (FP8-quantized in that mode); then it computes 16-row tiles of the
// chosen experts' mlp1 (8 interleaved gate/up pairs) and applies the clamped SwiGLU.
__device__ void phase_experts_up(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  select_experts(a, s);
  mark(a, s, Mark::kUpSelect);
  // t_mlp = rmsnorm(x_attn) is still in s.act: the router phase computed it in every CTA.
  mark(a, s, Mark::kUpNorm);
  stage_expert_inputs(s, a.experts_fp8, a.hidden, 1);
  mark(a, s, Mark::kUpStage);
  const uint8_t* staged = reinterpret_cast<const uint8_t*>(s.act) + expert_smem(a.hidden, 1).staged;
  const int inter = a.intermediate, mlp1 = 2 * inter, nb = a.hidden / kMxBlock;
  const int tiles_per_expert = mlp1 / dev::kMxfp4TileRows;  // inter % 32 == 0 (checked at launch)
  const int tiles = a.experts_per_token * tiles_per_expert;
  // CTA b owns tiles b, b + grid, ... (so every SM gets a share) and computes them in rounds of
  // kUpTilesPerRound tiles, each tile's K range split over kUpSplits warps so that all warps are
  // busy; the partial sums meet in shared memory and are added in split order.
  const int my_tiles = tiles > int(blockIdx.x) ? (tiles - 1 - int(blockIdx.x)) / int(gridDim.x) + 1 : 0;
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + expert_smem(a.hidden, 1).red);
  const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int warp = threadIdx.x >> 5, slot = warp / kUpSplits, split = warp % kUpSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kUpSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kUpSplits * dev::kMxfp4BlocksPerStep);
  auto tile_expert = [&](int j, int* r, int* row0) {
    const int t = int(blockIdx.x) + j * int(gridDim.x);
    *r = t / tiles_per_expert;
    *row0 = (t % tiles_per_expert) * dev::kMxfp4TileRows;
    return size_t(s.sel[*r]);
  };
  for (int j0 = 0; j0 < my_tiles; j0 += kUpTilesPerRound) {
    const int j = j0 + slot;
    if (j < my_tiles) {
      int r, row0;
      const size_t expert = tile_expert(j, &r, &row0);
      const dev::Mxfp4Matrix w{L.mlp1_blocks + expert * mlp1 * (size_t(nb) * dev::kMxfp4BlockBytes),
                               L.mlp1_scales + expert * mlp1 * size_t(nb), mlp1, nb};
      float acc[2] = {0.0f, 0.0f};
      if (kb_begin < kb_end) expert_tile(acc, a.experts_fp8, w, staged, row0, kb_begin, kb_end);
      if (tig == 0) {
        red[warp * dev::kMxfp4TileRows + gid] = acc[0];
        red[warp * dev::kMxfp4TileRows + gid + 8] = acc[1];
      }
    }
    __syncthreads();
    // One thread per (tile, channel): rows 2c (gate) and 2c + 1 (up) of the tile.
    constexpr int kChannels = dev::kMxfp4TileRows / 2;
    const int sl = int(threadIdx.x) / kChannels, c = int(threadIdx.x) % kChannels;
    if (sl < kUpTilesPerRound && j0 + sl < my_tiles) {
      int r, row0;
      const size_t expert = tile_expert(j0 + sl, &r, &row0);
      float gate = 0.0f, up = 0.0f;
      for (int q = 0; q < kUpSplits; ++q) {
        gate += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c];
        up += red[(sl * kUpSplits + q) * dev::kMxfp4TileRows + 2 * c + 1];
      }
      const size_t bias = expert * mlp1 + row0 + 2 * c;
      gate += bf16_bits_to_float(L.mlp1_bias[bias]);
      up += bf16_bits_to_float(L.mlp1_bias[bias + 1]);
      a.swiglu_out[r * inter + row0 / 2 + c] = float_to_bf16_bits(swiglu(gate, up, a.swiglu_limit));
    }
    __syncthreads();
  }
  mark(a, s, Mark::kUpGemv);
}

// Phase kExpertsDown: CTA b takes 16-row tiles b, b + grid, ... of the hidden dimension; its
// warps split as (expert rank, K split) and compute y_e = W2_e a_e over their share of K; the
// partial sums meet in shared memory and x[n] += sum_e w_e (y_e[n] + b2_e[n]) in rank order.
__device__ void phase_experts_down(const MegakernelArgs& a, const LayerArgs& L, const Smem& s) {
  const int inter = a.intermediate, k = a.experts_per_token, nb = inter / kMxBlock;
  const int tiles = (a.hidden + dev::kMxfp4TileRows - 1) / dev::kMxfp4TileRows;
  if (int(blockIdx.x) >= tiles) return;  // nothing to do (tiny shapes on a big grid)
  bf16_act_to_smem(s.act, a.swiglu_out, k * inter);
  __syncthreads();
  mark(a, s, Mark::kDownCopy);
  stage_expert_inputs(s, false, inter, k);  // BF16 input in both modes
  mark(a, s, Mark::kDownStage);
  const ExpertSmem e = expert_smem(inter, k);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(s.act);
  float* red = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(s.act) + e.red);
  const int lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int warp = threadIdx.x >> 5, r = warp / kDownSplits, split = warp % kDownSplits;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  const int kb_begin = steps * split / kDownSplits * dev::kMxfp4BlocksPerStep;
  const int kb_end = min(nb, steps * (split + 1) / kDownSplits * dev::kMxfp4BlocksPerStep);
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int row0 = tile * dev::kMxfp4TileRows;
    if (r < k) {
      const size_t expert = size_t(s.sel[r]);
      const dev::Mxfp4Matrix w{
          L.mlp2_blocks + expert * a.hidden * (size_t(nb) * dev::kMxfp4BlockBytes),
          L.mlp2_scales + expert * a.hidden * size_t(nb), a.hidden, nb};
      float acc[2] = {0.0f, 0.0f};
      if (kb_begin < kb_end) {
        expert_tile(acc, false, w, base + e.staged + r * e.staged_stride, row0, kb_begin, kb_end);
      }
      if (tig == 0) {
        red[warp * dev::kMxfp4TileRows + gid] = acc[0];
        red[warp * dev::kMxfp4TileRows + gid + 8] = acc[1];
      }
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
  mark(a, s, Mark::kDownGemv);
}

}  // namespace gptoss::mk::kernel
