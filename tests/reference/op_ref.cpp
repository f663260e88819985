// op_ref.cpp — FP64 per-op references (see op_ref.h). Straight loops; the big GEMVs (the 201088-row
// LM head) are split over host threads.
#include "tests/reference/op_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>

#include "host/numeric.h"

namespace gptoss::opref {
namespace {

// Runs fn(begin, end) over [0, n) on up to hardware_concurrency threads.
template <class Fn>
void parallel_rows(int64_t n, Fn&& fn) {
  const int64_t threads =
      std::min<int64_t>(std::max(1u, std::thread::hardware_concurrency()), std::max<int64_t>(1, n / 256));
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] { fn(n * t / threads, n * (t + 1) / threads); });
  }
  for (auto& th : pool) th.join();
}

double e8m0(uint8_t s) {
  return s == 255 ? std::numeric_limits<double>::quiet_NaN() : std::ldexp(1.0, int(s) - 127);
}

}  // namespace

float host_bf16_to_float(uint16_t b) { return bf16_to_float(b); }
uint16_t host_float_to_bf16(float f) { return float_to_bf16(f); }
float host_fp8_e4m3_to_float(uint8_t v) { return fp8_e4m3_to_float(v); }
uint8_t host_float_to_fp8_e4m3(float f) { return float_to_fp8_e4m3(f); }
float host_e8m0_to_float(uint8_t s) { return e8m0_to_float(s); }
float host_fp4_value(uint8_t nibble) { return kFp4Values[nibble & 15]; }

namespace {
// y[row] = sum_i weight(row, i) * x[i] (+ bias[row]) in FP64, with the sum of |terms| as the
// rounding scale; rows in parallel.
template <class Weight>
RefVec gemv_ref(int64_t rows, int k, const float* x, const uint16_t* bias, Weight weight) {
  RefVec r{std::vector<double>(size_t(rows)), std::vector<double>(size_t(rows))};
  parallel_rows(rows, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      double acc = 0.0, mag = 0.0;
      for (int i = 0; i < k; ++i) {
        const double t = weight(row, i) * double(x[i]);
        acc += t;
        mag += std::fabs(t);
      }
      if (bias) {
        const double b = bf16_to_float(bias[row]);
        acc += b;
        mag += std::fabs(b);
      }
      r.value[size_t(row)] = acc;
      r.scale[size_t(row)] = mag;
    }
  });
  return r;
}
}  // namespace

RefVec gemv_bf16(const uint16_t* w, int64_t rows, int k, const float* x, const uint16_t* bias) {
  return gemv_ref(rows, k, x, bias,
                  [&](int64_t row, int i) { return double(bf16_to_float(w[row * k + i])); });
}

double mxfp4_value(const uint8_t* row_blocks, const uint8_t* row_scales, int k) {
  const uint8_t byte = row_blocks[(k >> 5) * 16 + ((k & 31) >> 1)];
  const uint8_t nib = (k & 1) ? (byte >> 4) : (byte & 0xf);
  return double(kFp4Values[nib]) * e8m0(row_scales[k >> 5]);
}

RefVec gemv_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int k, const float* x,
                  const uint16_t* bias) {
  const int nb = k / 32;
  return gemv_ref(rows, k, x, bias, [&](int64_t row, int i) {
    return mxfp4_value(blocks + row * nb * 16, scales + row * nb, i);
  });
}

void quantize_fp8_blocks(const float* x, int k, uint8_t* codes, uint8_t* scales) {
  for (int b = 0; b < k / 32; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    if (amax == 0.0f) {
      scales[b] = 0;
      for (int i = 0; i < 32; ++i) codes[b * 32 + i] = 0;
      continue;
    }
    const int e = std::clamp(std::ilogb(amax) - 8, -127, 127);
    scales[b] = uint8_t(e + 127);
    for (int i = 0; i < 32; ++i) codes[b * 32 + i] = float_to_fp8_e4m3(std::ldexp(x[b * 32 + i], -e));
  }
}

std::vector<float> dequantize_fp8_blocks(const uint8_t* codes, const uint8_t* scales, int k) {
  std::vector<float> out(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) {
    out[size_t(i)] = float(double(fp8_e4m3_to_float(codes[i])) * std::ldexp(1.0, int(scales[i / 32]) - 127));
  }
  return out;
}

std::vector<double> rmsnorm(const float* x, const uint16_t* gain, int n, double eps) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const double r = 1.0 / std::sqrt(ss / n + eps);
  std::vector<double> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) * r * double(bf16_to_float(gain[i]));
  return out;
}

namespace {
RefVec rope_apply(const float* x, int num_heads, int head_dim, const std::vector<double>& c,
                  const std::vector<double>& s) {
  const int half = head_dim / 2;
  RefVec r{std::vector<double>(size_t(num_heads) * head_dim), std::vector<double>(size_t(num_heads) * head_dim)};
  for (int h = 0; h < num_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      const double a = x[h * head_dim + i], b = x[h * head_dim + i + half];
      const size_t ia = size_t(h) * head_dim + i, ib = ia + size_t(half);
      r.value[ia] = a * c[size_t(i)] - b * s[size_t(i)];
      r.value[ib] = b * c[size_t(i)] + a * s[size_t(i)];
      const double mag = (std::fabs(a) + std::fabs(b)) * std::max(std::fabs(c[size_t(i)]) + std::fabs(s[size_t(i)]), 1.0);
      r.scale[ia] = mag;
      r.scale[ib] = mag;
    }
  }
  return r;
}
}  // namespace

RefVec rope_computed(const float* x, int num_heads, int head_dim, int pos, const float* inv_freq_f32,
                     double concentration) {
  const int half = head_dim / 2;
  std::vector<double> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const volatile float angle = float(pos) * inv_freq_f32[i];  // one FP32 rounding, as on the device
    c[size_t(i)] = concentration * std::cos(double(angle));
    s[size_t(i)] = concentration * std::sin(double(angle));
  }
  return rope_apply(x, num_heads, head_dim, c, s);
}

RefVec rope_table(const float* x, int num_heads, int head_dim, int pos, const float* cos_sin) {
  const int half = head_dim / 2;
  std::vector<double> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    c[size_t(i)] = cos_sin[(size_t(pos) * half + i) * 2];
    s[size_t(i)] = cos_sin[(size_t(pos) * half + i) * 2 + 1];
  }
  return rope_apply(x, num_heads, head_dim, c, s);
}

double swiglu(double gate, double up, double limit, double* scale_out) {
  const double g = std::min(gate, limit);
  const double u = std::clamp(up, -limit, limit);
  const double alpha = double(1.702f);  // the FP32 constant the device (and torch on FP32) uses
  const double gs = g / (1.0 + std::exp(-alpha * g));
  if (scale_out) *scale_out = std::fabs(gs) * (std::fabs(u) + 1.0) * (1.0 + std::fabs(alpha * g));
  return gs * (u + 1.0);
}

RefVec attention(const AttnRefInput& in) {
  const int d = in.head_dim, group = in.num_heads / in.num_kv_heads;
  const int begin = in.window > 0 ? std::max(0, in.pos - in.window + 1) : 0;
  RefVec r{std::vector<double>(size_t(in.num_heads) * d), std::vector<double>(size_t(in.num_heads) * d)};
  std::vector<double> logit(size_t(in.pos + 1));
  for (int h = 0; h < in.num_heads; ++h) {
    const int g = h / group;
    const uint16_t* q = in.q + size_t(h) * d;
    double m = bf16_to_float(in.sinks[h]);
    for (int j = begin; j <= in.pos; ++j) {
      const uint16_t* k = in.k + (size_t(j) * in.num_kv_heads + g) * d;
      double dot = 0.0;
      for (int i = 0; i < d; ++i) dot += double(bf16_to_float(q[i])) * double(bf16_to_float(k[i]));
      logit[size_t(j)] = dot * in.scale;
      m = std::max(m, logit[size_t(j)]);
    }
    double l = std::exp(double(bf16_to_float(in.sinks[h])) - m);
    std::vector<double> acc(size_t(d), 0.0), mag(size_t(d), 0.0);
    for (int j = begin; j <= in.pos; ++j) {
      const double p = std::exp(logit[size_t(j)] - m);
      l += p;
      const uint16_t* v = in.v + (size_t(j) * in.num_kv_heads + g) * d;
      for (int i = 0; i < d; ++i) {
        const double vv = bf16_to_float(v[i]);
        acc[size_t(i)] += p * vv;
        mag[size_t(i)] += p * std::fabs(vv);
      }
    }
    for (int i = 0; i < d; ++i) {
      r.value[size_t(h) * d + i] = acc[size_t(i)] / l;
      r.scale[size_t(h) * d + i] = mag[size_t(i)] / l;
    }
  }
  return r;
}

TopKRef router_topk(const float* logits, int num_experts, int k) {
  std::vector<int> order(static_cast<size_t>(num_experts));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  TopKRef r;
  r.index.assign(order.begin(), order.begin() + k);
  double sum = 0.0;
  for (int i = 0; i < k; ++i) {
    r.weight.push_back(std::exp(double(logits[r.index[size_t(i)]]) - double(logits[r.index[0]])));
    sum += r.weight.back();
  }
  for (double& w : r.weight) w /= sum;
  return r;
}

size_t argmax(const double* v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (v[i] > v[best] || std::isnan(v[best])) best = i;
  }
  return best;
}

}  // namespace gptoss::opref
