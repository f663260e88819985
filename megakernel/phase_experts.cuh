// phase_experts.cuh — the MoE phases: kExpertsUp (mlp1 of the token's top-k experts with the
// clamped SwiGLU) and kExpertsDown (mlp2, the weighted sum over experts and the residual add), as
// MXFP4 tensor-core GEMVs over tiles in the weight ring. Block scope.
#pragma once

#include "megakernel/kernel_common.cuh"
#include "megakernel/weight_ring.cuh"

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
      dev::block_quantize_fp8<float, Consumers>(base + e.codes + v * k, base + e.scales + v * (k / kMxBlock),
                              s.act + v * k, k);
    }
    consumer_sync();
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_fp8<Consumers>(base + e.staged + v * e.staged_stride, base + e.codes + v * k,
                                       base + e.scales + v * (k / kMxBlock), k);
    }
  } else {
    for (int v = 0; v < n; ++v) {
      dev::stage_mxfp4_activations_bf16<float, Consumers>(base + e.staged + v * e.staged_stride, s.act + v * k, k);
    }
  }
}

// One 16-row tile of an MXFP4 matrix against staged activations, blocks [kb_begin, kb_end):
// acc[0] = row row0 + lane/4, acc[1] = row row0 + lane/4 + 8, in every lane of a quad.
// The tile is in a ring slot (shared memory).
__device__ __forceinline__ void expert_tile(float (&acc)[2], bool fp8, const dev::Mxfp4Matrix& w,
                                            const uint8_t* staged, int row0, int kb_begin,
                                            int kb_end) {
  if (fp8) {
    dev::warp_gemv_mxfp4_fp8<kMxUnroll, dev::SharedWeights>(acc, w, staged, row0, kb_begin, kb_end);
  } else {
    dev::warp_gemv_mxfp4_bf16<kMxUnroll, dev::SharedWeights>(acc, w, staged, row0, kb_begin, kb_end);
  }
}

// An expert tile in a ring slot: `rows` rows' blocks, then their scales.
__device__ __forceinline__ dev::Mxfp4Matrix slot_tile(const uint8_t* slot, int rows, int nb) {
  return dev::Mxfp4Matrix{slot, slot + size_t(rows) * nb * dev::kMxfp4BlockBytes, rows, nb};
}

// This warp's share [kb_begin, kb_end) of a tile's nb blocks: every warp of the CTA takes whole
// steps of kMxfp4BlocksPerStep blocks, in warp order.
__device__ __forceinline__ void warp_k_share(int nb, int* kb_begin, int* kb_end) {
  const int warp = int(threadIdx.x) >> 5;
  const int steps = (nb + dev::kMxfp4BlocksPerStep - 1) / dev::kMxfp4BlocksPerStep;
  *kb_begin = steps * warp / kWarps * dev::kMxfp4BlocksPerStep;
  *kb_end = min(nb, steps * (warp + 1) / kWarps * dev::kMxfp4BlocksPerStep);
}

// Stores a warp's tile sums (acc[0]: row lane/4, acc[1]: row lane/4 + 8) in its red row block.
__device__ __forceinline__ void store_tile_sums(float* red, const float (&acc)[2]) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  if ((lane & 3) == 0) {
    red[warp * kSlotRedRows + (lane >> 2)] = acc[0];
    red[warp * kSlotRedRows + (lane >> 2) + 8] = acc[1];
  }
}
// Row r of the tile: the warps' shares summed in warp order.
__device__ __forceinline__ float tile_row_sum(const float* red, int r) {
  float v = 0.0f;
  for (int w = 0; w < kWarps; ++w) v += red[w * kSlotRedRows + r];
  return v;
}


// Phase kExpertsUp (after select_experts): t = rmsnorm(x_attn) is still in s.act from the router
// phase (every CTA computed it there), staged for the tensor-core GEMV (FP8-quantized in that
// mode); then the CTA's 16-row tiles of the chosen experts' mlp1 (8 interleaved gate/up pairs each)
// from its weight stream, all warps on one tile (K split), and the clamped SwiGLU.
__device__ void phase_experts_up(const MegakernelArgs& a, const LayerArgs& L, int layer,
                                 const Smem& s, WeightStream& ws) {
  const int inter = a.intermediate, mlp1 = 2 * inter, nb = a.hidden / kMxBlock;
  const WorkSegment sg = ws.segment(int(Phase::kExpertsUp));
  // ep[16 j + r] = bias of row r of the CTA's tile j.
  float pre[kEpiloguePerThread];
  const int n_ep = kExpertTileRows * int(segment_units(sg));
  epilogue_load(pre, n_ep, [&](int e) {
    const WorkItem t = segment_item(a, sg, layer, uint32_t(e / kExpertTileRows));
    const int row = int(t.first) + e % kExpertTileRows;
    return row < mlp1 ? bf16_bits_to_float(L.mlp1_bias[size_t(s.sel[t.rank]) * mlp1 + row]) : 0.0f;
  });
  mark(a, s, Mark::kUpNorm);
  stage_expert_inputs(s, a.experts_fp8, a.hidden, 1);
  mark(a, s, Mark::kUpStage);
  const uint8_t* staged = reinterpret_cast<const uint8_t*>(s.act) + expert_smem(a.hidden, 1).staged;
  int kb_begin, kb_end;
  warp_k_share(nb, &kb_begin, &kb_end);
  consume_segment(
      a, s, ws, sg, layer, pre, n_ep,
      [&](const WorkItem& it, const uint8_t* w, float* red) {
        float acc[2] = {0.0f, 0.0f};
        if (kb_begin < kb_end) {
          expert_tile(acc, a.experts_fp8, slot_tile(w, int(it.count), nb), staged, 0, kb_begin, kb_end);
        }
        store_tile_sums(red, acc);
      },
      [&](uint32_t item, const WorkItem& it, const float* red) {
        // One thread per channel c: rows 2c (gate) and 2c + 1 (up) of the tile.
        const int c = int(threadIdx.x);
        if (c >= int(it.count) / 2) return;
        const float* bias = s.ep + item * kExpertTileRows;
        const float gate = tile_row_sum(red, 2 * c) + bias[2 * c];
        const float up = tile_row_sum(red, 2 * c + 1) + bias[2 * c + 1];
        a.swiglu_out[it.rank * inter + int(it.first) / 2 + c] =
            float_to_bf16_bits(swiglu(gate, up, a.swiglu_limit));
      });
  mark(a, s, Mark::kUpGemv);
}

// Phase kExpertsDown: the CTA's 16-row tiles of the hidden dimension, each for every chosen expert
// in rank order (one slot per expert tile): y_e = W2_e a_e (+ b2_e), and
// x[n] += sum_e w_e y_e[n] accumulated in rank order by the tile's row threads. The tiles' biases
// and residual rows are loaded at the start, with the expert activations.
__device__ void phase_experts_down(const MegakernelArgs& a, const LayerArgs& L, int layer,
                                   const Smem& s, WeightStream& ws) {
  const int inter = a.intermediate, k = a.experts_per_token, nb = inter / kMxBlock;
  const WorkSegment sg = ws.segment(int(Phase::kExpertsDown));
  // ep[(k + 1) 16 j + 16 r + i]: bias of rank r (r < k) or the residual (r = k) of row i of tile j.
  float pre[kEpiloguePerThread];
  const int per_tile = (k + 1) * kExpertTileRows;
  const int n_ep = per_tile * int(segment_units(sg));
  epilogue_load(pre, n_ep, [&](int e) {
    const int j = e / per_tile, r = (e % per_tile) / kExpertTileRows, i = e % kExpertTileRows;
    const int row = int(sg.first + uint32_t(j) * sg.step) * kExpertTileRows + i;
    if (row >= a.hidden) return 0.0f;
    return r < k ? bf16_bits_to_float(L.mlp2_bias[size_t(s.sel[r]) * a.hidden + row]) : ld_act(a.x + row);
  });
  bf16_act_to_smem(s.act, a.swiglu_out, k * inter);
  consumer_sync();
  mark(a, s, Mark::kDownCopy);
  stage_expert_inputs(s, false, inter, k);  // BF16 input in both modes
  mark(a, s, Mark::kDownStage);
  const ExpertSmem e = expert_smem(inter, k);
  const uint8_t* base = reinterpret_cast<const uint8_t*>(s.act);
  int kb_begin, kb_end;
  warp_k_share(nb, &kb_begin, &kb_end);
  float moe = 0.0f;  // thread i < 16: the weighted expert sum of the current tile's row i
  consume_segment(
      a, s, ws, sg, layer, pre, n_ep,
      [&](const WorkItem& it, const uint8_t* w, float* red) {
        float acc[2] = {0.0f, 0.0f};
        if (kb_begin < kb_end) {
          expert_tile(acc, false, slot_tile(w, int(it.count), nb),
                      base + e.staged + it.rank * e.staged_stride, 0, kb_begin, kb_end);
        }
        store_tile_sums(red, acc);
      },
      [&](uint32_t item, const WorkItem& it, const float* red) {
        const int i = int(threadIdx.x);
        if (i >= int(it.count)) return;
        const float* ep = s.ep + (item / uint32_t(k)) * per_tile;
        const float y = tile_row_sum(red, i) + ep[it.rank * kExpertTileRows + i];
        moe = fmaf(s.sel_w[it.rank], y, it.rank == 0 ? 0.0f : moe);
        if (int(it.rank) == k - 1) a.x[int(it.first) + i] = ep[k * kExpertTileRows + i] + moe;
      });
  mark(a, s, Mark::kDownGemv);
}

}  // namespace gptoss::mk::kernel
