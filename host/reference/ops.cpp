#include "host/reference/ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>

#include "host/error.h"
#include "model/fp8_rows.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GPTOSS_REF_X86 1
#include <immintrin.h>  // AVX2 intrinsics for the dot products (runtime-dispatched)
#else
#define GPTOSS_REF_X86 0
#endif

namespace gptoss::ref {

YarnRope::YarnRope(const ModelConfig& c) {
  const YarnParams p = yarn_params(c);
  omega_ = yarn_inv_freq(p);
  concentration_ = yarn_concentration(p);
}

void YarnRope::row(int pos, float* cos_out, float* sin_out) const {
  yarn_row(omega_, concentration_, pos, cos_out, sin_out);
}

void apply_rope(float* head, const float* cos, const float* sin, int head_dim) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float a = head[i], b = head[i + half];
    head[i] = a * cos[i] - b * sin[i];
    head[i + half] = b * cos[i] + a * sin[i];
  }
}

void rmsnorm_bf16(bf16_bits* out, const float* x, const bf16_bits* gain, int n, float eps) {
  double sum_sq = 0.0;
  for (int i = 0; i < n; ++i) sum_sq += double(x[i]) * double(x[i]);
  const float r = static_cast<float>(1.0 / std::sqrt(sum_sq / n + double(eps)));
  for (int i = 0; i < n; ++i) out[i] = float_to_bf16((x[i] * r) * bf16_to_float(gain[i]));
}

namespace detail {

float dot_bf16_scalar(const bf16_bits* w, const float* x, int n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += bf16_to_float(w[k + j]) * x[k + j];
  }
  for (int j = 0; k < n; ++k, ++j) acc[j] += bf16_to_float(w[k]) * x[k];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

namespace {

// Byte -> (even element, odd element) values of an MXFP4 pair (low nibble first).
struct Fp4PairTable {
  std::array<float, 512> v;
  Fp4PairTable() {
    for (int b = 0; b < 256; ++b) {
      v[2 * b] = kFp4Values[b & 0xf];
      v[2 * b + 1] = kFp4Values[b >> 4];
    }
  }
};
const Fp4PairTable kFp4Pairs;

}  // namespace

float dot_mxfp4_scalar(const uint8_t* row_blocks, const uint8_t* row_scales, const float* x,
                       int n) {
  constexpr int kBlock = 32, kLanes = 8;
  float acc = 0.0f;
  for (int g = 0; g < n / kBlock; ++g) {
    float w[kBlock];
    const uint8_t* b = row_blocks + g * (kBlock / 2);
    for (int j = 0; j < kBlock / 2; ++j) {
      w[2 * j] = kFp4Pairs.v[2 * b[j]];
      w[2 * j + 1] = kFp4Pairs.v[2 * b[j] + 1];
    }
    const float* xb = x + g * kBlock;
    float part[kLanes] = {};
    for (int k = 0; k < kBlock; k += kLanes) {
      for (int j = 0; j < kLanes; ++j) part[j] += w[k + j] * xb[k + j];
    }
    for (int width = kLanes / 2; width > 0; width /= 2) {
      for (int j = 0; j < width; ++j) part[j] += part[j + width];
    }
    acc += part[0] * e8m0_to_float(row_scales[g]);
  }
  return acc;
}

#if GPTOSS_REF_X86
// AVX2 versions: the same products (exact) summed in the same lane order as the scalar code,
// so both give bit-identical results; test_reference checks that.
__attribute__((target("avx2"))) float dot_bf16_avx2(const bf16_bits* w, const float* x, int n) {
  constexpr int kLanes = 16;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    const __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
    const __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(raw, 1));
    const __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(lo, 16));
    const __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16));
    acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(w0, _mm256_loadu_ps(x + k)));
    acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(w1, _mm256_loadu_ps(x + k + 8)));
  }
  alignas(32) float acc[kLanes];
  _mm256_store_ps(acc, acc0);
  _mm256_store_ps(acc + 8, acc1);
  for (int j = 0; k < n; ++k, ++j) acc[j] += bf16_to_float(w[k]) * x[k];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

// 8 doubled fp4 values (low 8 int8 lanes of v8) times 8 inputs.
__attribute__((target("avx2"), always_inline)) inline __m256 mxfp4_term_avx2(__m128i v8,
                                                                              const float* x) {
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v8)), _mm256_loadu_ps(x));
}

__attribute__((target("avx2"))) float dot_mxfp4_avx2(const uint8_t* row_blocks,
                                                     const uint8_t* row_scales, const float* x,
                                                     int n) {
  // Twice the fp4 values as int8, so one byte shuffle decodes a nibble; the factor 2 is undone
  // exactly (a power of two) before the block scale is applied.
  const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  const __m128i nibble = _mm_set1_epi8(0x0f);
  float acc = 0.0f;
  for (int g = 0; g < n / 32; ++g) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row_blocks + g * 16));
    const __m128i vlo = _mm_shuffle_epi8(lut, _mm_and_si128(b, nibble));
    const __m128i vhi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), nibble));
    const __m128i e0 = _mm_unpacklo_epi8(vlo, vhi);  // elements 0..15 in order
    const __m128i e1 = _mm_unpackhi_epi8(vlo, vhi);  // elements 16..31
    const float* xb = x + g * 32;
    __m256 p = _mm256_setzero_ps();
    p = _mm256_add_ps(p, mxfp4_term_avx2(e0, xb));
    p = _mm256_add_ps(p, mxfp4_term_avx2(_mm_srli_si128(e0, 8), xb + 8));
    p = _mm256_add_ps(p, mxfp4_term_avx2(e1, xb + 16));
    p = _mm256_add_ps(p, mxfp4_term_avx2(_mm_srli_si128(e1, 8), xb + 24));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));  // j, j+4
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));                                         // j, j+2
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));                                     // 0, 1
    acc += (_mm_cvtss_f32(q) * 0.5f) * e8m0_to_float(row_scales[g]);
  }
  return acc;
}

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif  // GPTOSS_REF_X86

}  // namespace detail

float dot_bf16(const bf16_bits* w, const float* x, int n) {
#if GPTOSS_REF_X86
  if (detail::has_avx2()) return detail::dot_bf16_avx2(w, x, n);
#endif
  return detail::dot_bf16_scalar(w, x, n);
}

float dot_mxfp4(const uint8_t* row_blocks, const uint8_t* row_scales, const float* x, int n) {
#if GPTOSS_REF_X86
  if (detail::has_avx2()) return detail::dot_mxfp4_avx2(row_blocks, row_scales, x, n);
#endif
  return detail::dot_mxfp4_scalar(row_blocks, row_scales, x, n);
}

void attention_head(float* out, const float* q, const bf16_bits* const* keys,
                    const bf16_bits* const* values, int num_keys, int head_dim, float scale,
                    float sink) {
  std::vector<float> logits(static_cast<size_t>(num_keys));
  float m = sink;
  for (int j = 0; j < num_keys; ++j) {
    float s = 0.0f;
    for (int d = 0; d < head_dim; ++d) s += q[d] * bf16_to_float(keys[j][d]);
    logits[static_cast<size_t>(j)] = s * scale;
    m = std::max(m, logits[static_cast<size_t>(j)]);
  }
  for (int d = 0; d < head_dim; ++d) out[d] = 0.0f;
  float denom = 0.0f;
  for (int j = 0; j < num_keys; ++j) {
    const float p = std::exp(logits[static_cast<size_t>(j)] - m);
    denom += p;
    for (int d = 0; d < head_dim; ++d) out[d] += p * bf16_to_float(values[j][d]);
  }
  denom += std::exp(sink - m);
  const float inv = 1.0f / denom;
  for (int d = 0; d < head_dim; ++d) out[d] *= inv;
}

TopK router_topk(const float* logits, int num_experts, int k) {
  GPTOSS_CHECK(k >= 1 && k <= num_experts, "router: top-{} of {} experts", k, num_experts);
  std::vector<int> order(static_cast<size_t>(num_experts));
  std::iota(order.begin(), order.end(), 0);
  for (int e = 0; e < num_experts; ++e) {
    if (std::isnan(logits[e])) throw Error(fmt::format("router logit of expert {} is NaN", e));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return logits[a] > logits[b]; });  // ties keep index order
  TopK t;
  t.experts.assign(order.begin(), order.begin() + k);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  t.kth_gap = k < num_experts ? logits[order[k - 1]] - logits[order[k]] : kInf;
  t.top2_gap = num_experts > 1 ? logits[order[0]] - logits[order[1]] : kInf;
  t.weights.resize(static_cast<size_t>(k));
  const float m = logits[order[0]];
  float sum = 0.0f;
  for (int i = 0; i < k; ++i) {
    t.weights[static_cast<size_t>(i)] = std::exp(logits[order[i]] - m);
    sum += t.weights[static_cast<size_t>(i)];
  }
  for (float& w : t.weights) w /= sum;
  return t;
}

float swiglu(float gate, float up, float limit) {
  const float g = std::min(gate, limit);
  const float u = std::clamp(up, -limit, limit);
  const float sig = 1.0f / (1.0f + std::exp(-kSwigluAlpha * g));
  return g * sig * (u + 1.0f);
}

int fp8_block_exponent(float amax) {
  constexpr int kE4m3MaxExp = 8;  // 448 = 1.75 * 2^8
  return std::clamp(std::ilogb(amax) - kE4m3MaxExp, -127, 127);
}

void quantize_fp8_blocks(uint8_t* codes, uint8_t* scales, float* dequant, const float* x, int n) {
  constexpr int kBlock = 32;
  GPTOSS_CHECK(n % kBlock == 0, "fp8 quantization: length {} is not a multiple of 32", n);
  for (int g = 0; g < n / kBlock; ++g) {
    const float* xb = x + g * kBlock;
    float amax = 0.0f;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    if (amax == 0.0f) {
      scales[g] = 0;
      for (int j = 0; j < kBlock; ++j) {
        codes[g * kBlock + j] = 0;
        dequant[g * kBlock + j] = 0.0f;
      }
      continue;
    }
    const int e = fp8_block_exponent(amax);
    scales[g] = static_cast<uint8_t>(e + 127);
    for (int j = 0; j < kBlock; ++j) {
      const uint8_t c = float_to_fp8_e4m3(std::ldexp(xb[j], -e));  // exact: a power-of-two scale
      codes[g * kBlock + j] = c;
      dequant[g * kBlock + j] = std::ldexp(fp8_e4m3_to_float(c), e);
    }
  }
}

namespace {

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[size_t(c)] = fp8::e4m3_to_float(uint8_t(c));
    return t;
  }();
  return table;
}

}  // namespace

float dot_e4m3(const uint8_t* codes, const float* x, int n) {
  const auto& lut = e4m3_table();
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += lut[codes[k + j]] * x[k + j];
  }
  for (int j = 0; k < n; ++k, ++j) acc[j] += lut[codes[k]] * x[k];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

float dense_row_dot(const void* weight, const float* scales, size_t row, const float* x, int n) {
  if (scales == nullptr) {
    return dot_bf16(static_cast<const bf16_bits*>(weight) + row * size_t(n), x, n);
  }
  return scales[row] * dot_e4m3(static_cast<const uint8_t*>(weight) + row * size_t(n), x, n);
}

}  // namespace gptoss::ref
