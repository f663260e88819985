// mxfp4_copy_ring.cuh — a per-lane ring of asynchronous copies (cp.async) that keeps an MXFP4
// GEMV's weight bytes in flight without holding them in registers. A lane's "step" is what
// warp_gemv_mxfp4_* loads per step: its block kb (one of the quad's four consecutive blocks) of
// rows a = row0 + lane/4 and b = row0 + lane/4 + 8 of a 16-row tile, 16 bytes each, and the two
// scale bytes (copied as their aligned 4-byte words). A warp owns kMxfp4RingSlots slots of
// kMxfp4RingSlotBytes; a lane only ever reads back what it copied itself, so no warp or block
// synchronisation is involved: the caller issues step i + slots - 1 (into the slot step i - 1 used),
// commits, waits with copy_async_wait_prior<slots - 1>() and reads step i. On AMD the copies are
// plain loads (platform.cuh).
// Requirements: blocks 16-byte aligned; the scales array 4-byte aligned with a length that is a
// multiple of 4 (so an aligned word never leaves it; true for every [E, rows, K/32] tensor with
// rows and K multiples of 32, checked by the engine).
#pragma once

#include "device_ops/gemv_mxfp4.cuh"

namespace gptoss::dev {

inline constexpr int kMxfp4RingLaneBytes = 2 * kMxfp4BlockBytes + 2 * int(sizeof(uint32_t));
inline constexpr int kMxfp4RingSlotBytes = kWarpSize * kMxfp4RingLaneBytes;  // one warp, one step

namespace detail {
// Slot layout (16-byte aligned): row-a blocks of the 32 lanes, row-b blocks, then per lane the
// scale words of rows a and b: consecutive lanes touch consecutive 16 (8) bytes.
inline constexpr int kRingBlocksB = kWarpSize * kMxfp4BlockBytes;
inline constexpr int kRingScales = 2 * kWarpSize * kMxfp4BlockBytes;
__device__ __forceinline__ const uint8_t* ring_scale_ptr(const Mxfp4Matrix& w, int row, int kb) {
  return w.scales + int64_t(row) * w.num_blocks + kb;
}
}  // namespace detail

// Issues this lane's copies of step (w, row0, kb = the lane's block) into `slot` (the warp's,
// kMxfp4RingSlotBytes, 16-byte aligned). Blocks at or past kb_end and rows at or past w.rows are
// not copied. Does not commit.
__device__ __forceinline__ void mxfp4_ring_issue(uint8_t* slot, const Mxfp4Matrix& w, int row0,
                                                 int kb, int kb_end) {
  if (kb >= kb_end) return;
  const int lane = lane_id(), row_a = row0 + (lane >> 2), row_b = row_a + 8;
  const auto word = [](const uint8_t* p) {
    return reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t(3));
  };
  uint8_t* scales = slot + detail::kRingScales + lane * 2 * int(sizeof(uint32_t));
  if (row_a < w.rows) {
    copy_async_16B(slot + lane * kMxfp4BlockBytes,
                   w.blocks + (int64_t(row_a) * w.num_blocks + kb) * kMxfp4BlockBytes);
    copy_async_4B(scales, word(detail::ring_scale_ptr(w, row_a, kb)));
  }
  if (row_b < w.rows) {
    copy_async_16B(slot + detail::kRingBlocksB + lane * kMxfp4BlockBytes,
                   w.blocks + (int64_t(row_b) * w.num_blocks + kb) * kMxfp4BlockBytes);
    copy_async_4B(scales + sizeof(uint32_t), word(detail::ring_scale_ptr(w, row_b, kb)));
  }
}

// Reads back what mxfp4_ring_issue copied for the same arguments (after the wait): the two blocks
// (zeros where nothing was copied) and their scale bytes (127, a finite multiplier, where nothing
// was copied).
__device__ __forceinline__ void mxfp4_ring_read(const uint8_t* slot, const Mxfp4Matrix& w,
                                                int row0, int kb, int kb_end, uint4& wa, uint4& wb,
                                                uint32_t& sa, uint32_t& sb) {
  const int lane = lane_id(), row_a = row0 + (lane >> 2), row_b = row_a + 8;
  const bool in = kb < kb_end, ok_a = in && row_a < w.rows, ok_b = in && row_b < w.rows;
  const uint8_t* scales = slot + detail::kRingScales + lane * 2 * int(sizeof(uint32_t));
  const auto byte_of = [&](int row, int at) {
    const uint32_t word = *reinterpret_cast<const uint32_t*>(scales + at);
    const int shift = 8 * int(reinterpret_cast<uintptr_t>(detail::ring_scale_ptr(w, row, kb)) & 3);
    return (word >> shift) & 0xffu;
  };
  wa = ok_a ? *reinterpret_cast<const uint4*>(slot + lane * kMxfp4BlockBytes) : make_uint4(0, 0, 0, 0);
  wb = ok_b ? *reinterpret_cast<const uint4*>(slot + detail::kRingBlocksB + lane * kMxfp4BlockBytes)
            : make_uint4(0, 0, 0, 0);
  sa = ok_a ? byte_of(row_a, 0) : 127u;
  sb = ok_b ? byte_of(row_b, int(sizeof(uint32_t))) : 127u;
}

}  // namespace gptoss::dev
