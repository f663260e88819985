// sample_gpu.cu — device side of host/runtime/sample_gpu.h: one block walks the logits (0.8 MB,
// L2-resident after the LM head wrote them) and applies the CPU sampler's definition
// (host/sampling/sampler.h) without sorting: each filter's boundary is found by a bitwise search
// over the order-preserving 32-bit keys of the logits (32 block-wide counting or summing passes),
// ties at a boundary are resolved by id with a search over the index (lower ids first, as the CPU
// order), then Gumbel-max over the kept tokens with the counter-based noise of rng.h. Shared-
// memory tree reductions only (no shuffles), so nvcc and hipcc compile the same code.
#include "host/runtime/sample_gpu_launch.h"

#include <cmath>
#include <cstdint>

// platform.cuh first: the vendor runtime (__global__, launches).
#include "device_ops/platform.cuh"
#include "host/gpu.h"  // check_launch
#include "host/sampling/rng.h"

namespace gptoss {
namespace {

constexpr int kThreads = 1024;

struct Shared {
  double d[kThreads];
  int64_t i[kThreads];
};

__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f);
  return b ^ ((b >> 31) ? 0xffffffffu : 0x80000000u);
}

__device__ double block_sum(double v, Shared& s) {
  s.d[threadIdx.x] = v;
  __syncthreads();
  for (int k = kThreads / 2; k > 0; k >>= 1) {
    if (int(threadIdx.x) < k) s.d[threadIdx.x] += s.d[threadIdx.x + k];
    __syncthreads();
  }
  const double r = s.d[0];
  __syncthreads();
  return r;
}

__device__ int64_t block_count(int64_t v, Shared& s) {
  s.i[threadIdx.x] = v;
  __syncthreads();
  for (int k = kThreads / 2; k > 0; k >>= 1) {
    if (int(threadIdx.x) < k) s.i[threadIdx.x] += s.i[threadIdx.x + k];
    __syncthreads();
  }
  const int64_t r = s.i[0];
  __syncthreads();
  return r;
}

// The largest score, the lowest index among equal scores (index -1 for none).
__device__ void block_argmax(double& score, int64_t& index, Shared& s) {
  s.d[threadIdx.x] = score;
  s.i[threadIdx.x] = index;
  __syncthreads();
  for (int k = kThreads / 2; k > 0; k >>= 1) {
    if (int(threadIdx.x) < k) {
      const double a = s.d[threadIdx.x], b = s.d[threadIdx.x + k];
      const int64_t ia = s.i[threadIdx.x], ib = s.i[threadIdx.x + k];
      if (ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia))) {
        s.d[threadIdx.x] = b;
        s.i[threadIdx.x] = ib;
      }
    }
    __syncthreads();
  }
  score = s.d[0];
  index = s.i[0];
  __syncthreads();
}

// A filter's boundary: tokens with key > key_cut are kept, and those with key == key_cut whose
// id is <= id_cut.
struct Cut {
  uint32_t key = 0;
  int64_t id = INT64_MAX;
  __device__ bool keeps(uint32_t k, int64_t i) const { return k > key || (k == key && i <= id); }
};

__global__ void sample_kernel(const float* __restrict__ logits, int n, GpuSampleArgs p,
                              double* __restrict__ e, int32_t* result) {
  __shared__ Shared s;
  const int t = threadIdx.x;
  // The maximum (lowest id among equals) and NaNs.
  double best = -INFINITY;
  int64_t best_id = -1, nans = 0;
  for (int i = t; i < n; i += kThreads) {
    const float x = logits[i];
    if (x != x) {
      ++nans;
    } else if (best_id < 0 || double(x) > best) {
      best = x;
      best_id = i;
    }
  }
  nans = block_count(nans, s);
  block_argmax(best, best_id, s);
  if (nans > 0 || best_id < 0) {
    if (t == 0) *result = -1;
    return;
  }
  if (p.temperature == 0.0f) {
    if (t == 0) *result = int32_t(best_id);
    return;
  }
  const double inv_t = 1.0 / double(p.temperature);
  const double zmax = best * inv_t;

  // Top-k: the k-th largest key, then the ids among its ties.
  Cut kcut;  // key 0 is below the key of every non-NaN float (-inf's is 0x007fffff): keeps all
  if (p.top_k > 0 && p.top_k < n) {
    uint32_t key = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = key | (1u << bit);
      int64_t c = 0;
      for (int i = t; i < n; i += kThreads) c += order_key(logits[i]) >= cand;
      if (block_count(c, s) >= p.top_k) key = cand;
    }
    int64_t gt = 0, eq = 0;
    for (int i = t; i < n; i += kThreads) {
      const uint32_t k = order_key(logits[i]);
      gt += k > key;
      eq += k == key;
    }
    gt = block_count(gt, s);
    eq = block_count(eq, s);
    kcut.key = key;
    const int64_t need = p.top_k - gt;  // ties to keep, lowest ids first
    if (need < eq) {
      int64_t lo = 0, hi = n - 1;  // the smallest id with `need` ties at or below it
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        int64_t c = 0;
        for (int i = t; i <= mid; i += kThreads) c += order_key(logits[i]) == key;
        if (block_count(c, s) >= need) hi = mid; else lo = mid + 1;
      }
      kcut.id = lo;
    }
  }

  // exp(z - zmax) of the tokens top-k keeps (0 for the others), and their sum.
  double total = 0;
  for (int i = t; i < n; i += kThreads) {
    const float x = logits[i];
    const double v = kcut.keeps(order_key(x), i) ? exp(double(x) * inv_t - zmax) : 0.0;
    e[i] = v;
    total += v;
  }
  total = block_sum(total, s);  // the block's own writes of e[] are visible after the barrier

  // Top-p: the largest key whose tokens at or above it carry >= top_p, then its ties by id.
  Cut pcut;
  if (p.top_p < 1.0f) {
    const double target = double(p.top_p) * total;
    uint32_t key = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = key | (1u << bit);
      double sum = 0;
      for (int i = t; i < n; i += kThreads) sum += order_key(logits[i]) >= cand ? e[i] : 0.0;
      if (block_sum(sum, s) >= target) key = cand;
    }
    double above = 0, tie_e = 0;
    int64_t eq = 0;
    for (int i = t; i < n; i += kThreads) {
      const uint32_t k = order_key(logits[i]);
      if (e[i] == 0.0) continue;
      if (k > key) above += e[i];
      if (k == key) {
        ++eq;
        tie_e = e[i];
      }
    }
    above = block_sum(above, s);
    eq = block_count(eq, s);
    // Ties share one logit, so one e value: the sum over the threads that saw one, divided.
    const int64_t seen = block_count(tie_e > 0 ? 1 : 0, s);
    tie_e = block_sum(tie_e, s);
    const double one_tie = seen > 0 ? tie_e / double(seen) : 0.0;
    pcut.key = key;
    if (eq > 1 && one_tie > 0) {
      int64_t need = int64_t(ceil((target - above) / one_tie));
      need = need < 1 ? 1 : need;
      if (need < eq) {
        int64_t lo = 0, hi = n - 1;
        while (lo < hi) {
          const int64_t mid = (lo + hi) / 2;
          int64_t c = 0;
          for (int i = t; i <= mid; i += kThreads) c += order_key(logits[i]) == key && e[i] > 0.0;
          if (block_count(c, s) >= need) hi = mid; else lo = mid + 1;
        }
        pcut.id = lo;
      }
    }
  }

  // Min-p, then Gumbel-max over what every filter keeps.
  const double floor_z = p.min_p > 0.0f ? log(double(p.min_p)) : -INFINITY;
  double score = -INFINITY;
  int64_t id = -1;
  for (int i = t; i < n; i += kThreads) {
    const float x = logits[i];
    const uint32_t k = order_key(x);
    const double z = double(x) * inv_t;
    if (!kcut.keeps(k, i) || !pcut.keeps(k, i) || z - zmax < floor_z) continue;
    const double sc = z + sampling::gumbel_noise(p.seed, p.draw, uint64_t(i));
    if (id < 0 || sc > score) {
      score = sc;
      id = i;
    }
  }
  block_argmax(score, id, s);
  if (t == 0) *result = int32_t(id);
}

}  // namespace

void sample_launch_device(const float* logits, int vocab, const GpuSampleArgs& args,
                          double* scratch, int32_t* result) {
  sample_kernel<<<1, kThreads>>>(logits, vocab, args, scratch, result);
  gpu::check_launch("token sampler");
}

}  // namespace gptoss
