// weight_ring.cuh — the weight stream of one CTA: its work list (megakernel/schedule.h, a segment
// per stream phase) walked through a ring of shared-memory slots that the bulk-copy engine fills
// (device_ops/bulk_copy.cuh).
//
// Roles. The producer warp (lane 0) walks the stream in order, for the whole step: for each item it
// waits until the item's slot is free (the slot's `empty` mbarrier), announces the item's bytes on
// the slot's `full` mbarrier and issues its bulk copies; the copy engine then moves the bytes while
// the consumers compute. It runs up to ring.stages items ahead of the consumers, across phase,
// barrier and layer boundaries (weights never depend on activations), and takes part in no barrier.
// Expert items wait until the consumers have chosen the layer's experts (s.sel_layer); everything
// behind them waits too (the ring is consumed in order). The consumers (kThreads threads, block
// scope) wait on a slot's `full` mbarrier, compute from it and release it (consumer_sync(), then
// one arrival on `empty`), so the producer's work is never on their path.
// Phases the step does not run (phase_runs: masked, before start_layer, after the stop point) are
// skipped by the producer as the phase loop skips them, so both walk the same sequence and no copy
// is in flight when the kernel returns. Without the bulk-copy engine (HIP) there is no producer:
// the consumers copy each item themselves in wait().
#pragma once

#include "device_ops/bulk_copy.cuh"
#include "megakernel/kernel_common.cuh"
#include "megakernel/phases.h"
#include "megakernel/work_item.h"

namespace gptoss::mk::kernel {

// The copies of one item into its slot: fn(dst_offset, src, bytes) for each contiguous piece.
// Expert items resolve their rank through `sel` (the layer's chosen experts).
template <class CopyFn>
__device__ __forceinline__ void for_each_copy(const MegakernelArgs& a, const StreamPtrs* ptrs,
                                              const int* sel, const WorkItem& it, CopyFn fn) {
  if (it.phase == kLmHeadPhase) {
    fn(0u, a.lm_head + size_t(it.first) * a.hidden, it.bytes);
    return;
  }
  const StreamPtrs& L = ptrs[it.layer];
  switch (static_cast<Phase>(it.phase)) {
    case Phase::kNormQkvRope: {
      // Pair u = rows (head * head_dim + i, + head_dim / 2) of the fused QKV matrix.
      const uint32_t row_bytes = uint32_t(a.hidden) * 2;
      const int half = a.head_dim / 2;
      for (uint32_t j = 0; j < it.count; ++j) {
        const int u = int(it.first + j), head = u / half, i = u % half;
        const size_t row_a = size_t(head) * a.head_dim + i;
        fn(2 * j * row_bytes, L.qkv_weight + row_a * a.hidden, row_bytes);
        fn((2 * j + 1) * row_bytes, L.qkv_weight + (row_a + half) * a.hidden, row_bytes);
      }
      break;
    }
    case Phase::kOutProj:
      fn(0u, L.out_weight + size_t(it.first) * a.num_heads * a.head_dim, it.bytes);
      break;
    case Phase::kExpertsUp:
    case Phase::kExpertsDown: {
      // A tile = its rows' blocks (contiguous), then their scales (contiguous).
      const bool up = it.phase == uint8_t(Phase::kExpertsUp);
      const int nb = (up ? a.hidden : a.intermediate) / 32;
      const size_t rows = up ? size_t(2) * a.intermediate : size_t(a.hidden);
      const size_t row0 = size_t(sel[it.rank]) * rows + it.first;
      const uint32_t block_bytes = it.count * uint32_t(nb) * 16;
      fn(0u, (up ? L.mlp1_blocks : L.mlp2_blocks) + row0 * nb * 16, block_bytes);
      fn(block_bytes, (up ? L.mlp1_scales : L.mlp2_scales) + row0 * nb, it.count * uint32_t(nb));
      break;
    }
    default:
      break;  // the schedule holds no other phases
  }
}

// Block scope, once at kernel start (before the roles split): the CTA's segments and the streamed
// tensors of every layer into shared memory, the slots' mbarriers.
__device__ inline void weight_stream_init(const MegakernelArgs& a, const Smem& s) {
  constexpr int kWords = kNumStreamSegments * int(sizeof(WorkSegment) / sizeof(uint32_t));
  if (threadIdx.x < kWords) {
    reinterpret_cast<uint32_t*>(s.segs)[threadIdx.x] = reinterpret_cast<const uint32_t*>(
        a.work_segments + size_t(blockIdx.x) * kNumStreamSegments)[threadIdx.x];
  }
  for (int l = int(threadIdx.x); l < a.num_layers; l += int(blockDim.x)) {
    const LayerArgs& L = a.layers[l];
    s.ptrs[l] = StreamPtrs{L.qkv_weight, L.out_weight, L.mlp1_blocks, L.mlp1_scales, L.mlp2_blocks,
                           L.mlp2_scales};
  }
  if (threadIdx.x == 0) {
    for (int i = 0; i < a.ring.stages; ++i) {
      dev::mbarrier_init(s.full + i, 1);   // the producer's arrive.expect_tx
      dev::mbarrier_init(s.empty + i, 1);  // consumer thread 0's release
    }
    dev::fence_mbarrier_init();
    *s.sel_layer = -1;
  }
}

// The producer (lane 0 of the producer warp): issues every item of the step in stream order.
__device__ inline void produce_weight_stream(const MegakernelArgs& a, const Smem& s) {
  const int stages = a.ring.stages;
  uint32_t seq = 0;
  volatile int* sel_layer = s.sel_layer;
  volatile int* sel = s.sel;
  auto run_segment = [&](int layer, const WorkSegment& sg) {
    if (!phase_runs(a, layer, sg.phase)) return;
    const uint32_t n = segment_items(sg);
    if (n == 0) return;
    int chosen[kMaxTopK];
    if (phase_is_expert(sg.phase)) {
      while (*sel_layer != layer) {  // published by the consumers after select_experts
        dev::nanosleep(128);           // spinning here would take issue slots from the consumers
      }
      __threadfence_block();  // the experts were written before the flag
      for (int r = 0; r < a.experts_per_token; ++r) chosen[r] = sel[r];
    }
    for (uint32_t i = 0; i < n; ++i, ++seq) {
      const int slot = int(seq % uint32_t(stages));
      const uint32_t use = seq / uint32_t(stages);
      if (use > 0) {
        while (!dev::mbarrier_try_wait_parity(s.empty + slot, (use - 1) & 1u)) {
        }
      }
      const WorkItem it = segment_item(a, sg, layer, i);
      uint8_t* dst = s.slots + size_t(slot) * size_t(a.ring.slot_bytes);
      uint64_t* bar = s.full + slot;
      dev::mbarrier_arrive_expect_tx(bar, it.bytes);
      for_each_copy(a, s.ptrs, chosen, it, [&](uint32_t off, const void* src, uint32_t bytes) {
        dev::copy_bulk(dst + off, src, bytes, bar);
      });
    }
  };
  for (int layer = a.start_layer; layer < a.num_layers; ++layer) {
    for (int g = 0; g < kLmHeadSegment; ++g) run_segment(layer, s.segs[g]);
  }
  run_segment(a.num_layers, s.segs[kLmHeadSegment]);
}

// The consumers' side of the stream.
class WeightStream {
 public:
  __device__ WeightStream(const MegakernelArgs& a, const Smem& s)
      : stages_(a.ring.stages), slot_bytes_(a.ring.slot_bytes), s_(s), seq_(0) {}

  // This CTA's share of a stream phase (the same in every layer).
  __device__ WorkSegment segment(int phase) const { return s_.segs[stream_segment_of(phase)]; }

  // Block scope: waits until item `it` (the next in stream order) is in its slot; returns the slot.
  __device__ const uint8_t* wait(const MegakernelArgs& a, const WorkItem& it) {
    const int slot = int(seq_ % uint32_t(stages_));
    uint8_t* dst = s_.slots + size_t(slot) * size_t(slot_bytes_);
    if constexpr (kProducerWarps > 0) {
      const uint32_t parity = (seq_ / uint32_t(stages_)) & 1u;
      while (!dev::mbarrier_try_wait_parity(s_.full + slot, parity)) {
      }
      (void)a;
      (void)it;
    } else {
      // No producer: copy the item cooperatively (16-byte pieces), then make it visible.
      for_each_copy(a, s_.ptrs, s_.sel, it, [&](uint32_t off, const void* src, uint32_t bytes) {
        for (uint32_t i = threadIdx.x * 16; i < bytes; i += kThreads * 16) {
          *reinterpret_cast<uint4*>(dst + off + i) =
              *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(src) + i);
        }
      });
      consumer_sync();
    }
    return dst;
  }

  // Block scope: every consumer is done reading the current slot (consumer_sync(), which also
  // orders the consumers' shared-memory writes before whatever follows); thread 0 frees the slot
  // for the producer (observed by its wait on `empty`).
  __device__ void release() {
    consumer_sync();
    if (kProducerWarps > 0 && threadIdx.x == 0) dev::mbarrier_arrive(s_.empty + seq_ % uint32_t(stages_));
    ++seq_;
  }
  // 0/1, alternating per item: consumers double-buffer their partial sums with it.
  __device__ int buf() const { return int(seq_ & 1u); }

 private:
  int stages_, slot_bytes_;
  const Smem& s_;
  uint32_t seq_;  // items consumed so far (slot = seq % stages)
};

// Block scope: consumes this CTA's items of a stream phase in order. For each item: wait for its
// slot, compute(it, slot, red) (partial sums into red), then release; item i's
// epilogue(i, it, red) runs one item later, before the next release (so it overlaps the other
// warps' compute instead of delaying them), and the last one after the loop. The phase's
// prefetched epilogue inputs (pre, n_ep) are stored to s.ep before the first release, which orders
// them before every epilogue.
template <class Compute, class Epilogue>
__device__ __forceinline__ void consume_segment(const MegakernelArgs& a, const Smem& s,
                                                WeightStream& ws, const WorkSegment& sg, int layer,
                                                const float (&pre)[kEpiloguePerThread], int n_ep,
                                                Compute compute, Epilogue epilogue) {
  const uint32_t n = segment_items(sg);
  WorkItem prev{};
  const float* prev_red = nullptr;
  for (uint32_t i = 0; i < n; ++i) {
    const WorkItem it = segment_item(a, sg, layer, i);
    const uint8_t* slot = ws.wait(a, it);
    float* red = slot_red(s, ws.buf());
    if (!(a.experiment & 1u)) compute(it, slot, red);
    if (i == 0) {
      epilogue_store(s, pre, n_ep);
    } else {
      epilogue(i - 1, prev, prev_red);
    }
    ws.release();
    prev = it;
    prev_red = red;
  }
  if (n > 0) epilogue(n - 1, prev, prev_red);
}

}  // namespace gptoss::mk::kernel
