// op_ref.h — FP64 CPU references for the device ops in device_ops/ (the test oracle of
// tests/test_*.cu and the validation step of bench/bench_gemv.cu). Inputs are taken already in the
// device's storage format (bf16 bits, MXFP4 bytes, FP32 values), so both sides start from the same
// numbers; everything after that is FP64. Where a result is a sum, `scale` carries the sum of the
// absolute values of its terms, the natural unit for an accumulation-error tolerance.
// The model-level oracle (the whole forward pass) is host/reference, not this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gptoss::opref {

// host/numeric.h behind a C++17 interface (the test .cu files compile as C++17).
float host_bf16_to_float(uint16_t b);
uint16_t host_float_to_bf16(float f);
float host_fp8_e4m3_to_float(uint8_t v);
uint8_t host_float_to_fp8_e4m3(float f);
float host_e8m0_to_float(uint8_t s);
float host_fp4_value(uint8_t nibble);

struct RefVec {
  std::vector<double> value;
  std::vector<double> scale;  // sum of |terms| (plus |bias|) per output
};

// y = W x + b. w: [rows, k] bf16 bits, row-major; x: [k]; bias: [rows] bf16 bits or nullptr.
RefVec gemv_bf16(const uint16_t* w, int64_t rows, int k, const float* x, const uint16_t* bias);

// MXFP4 weights: blocks [rows, k/32, 16] (low nibble = even element), scales [rows, k/32] e8m0.
RefVec gemv_mxfp4(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int k, const float* x,
                  const uint16_t* bias);
// One dequantized MXFP4 weight in FP64 (scale 255 gives NaN).
double mxfp4_value(const uint8_t* row_blocks, const uint8_t* row_scales, int k);

// notes/fp8.md: codes[k] (E4M3) and scales[k/32] (E8M0) of x[k] (values bf16-representable).
void quantize_fp8_blocks(const float* x, int k, uint8_t* codes, uint8_t* scales);
// x' = e4m3(code) * 2^(scale - 127), the value the FP8 path multiplies with.
std::vector<float> dequantize_fp8_blocks(const uint8_t* codes, const uint8_t* scales, int k);

// t_i = x_i / sqrt(mean(x^2) + eps) * g_i, not rounded.
std::vector<double> rmsnorm(const float* x, const uint16_t* gain, int n, double eps);

// Rotated heads: x [num_heads][head_dim] floats, pairs (i, i + head_dim/2).
// Computed mode: angle = FP32 float(pos) * inv_freq_f32[i] (as the device forms it), cos/sin in
// FP64, times concentration. Table mode: cos_sin = [positions][head_dim/2][2] as given.
RefVec rope_computed(const float* x, int num_heads, int head_dim, int pos, const float* inv_freq_f32,
                     double concentration);
RefVec rope_table(const float* x, int num_heads, int head_dim, int pos, const float* cos_sin);

// Clamped SwiGLU of one channel (alpha = 1.702f); scale_out = |g sigmoid(alpha g)| (|u| + 1)
// (1 + |alpha g|) after clamping: the last factor carries the FP32 rounding of alpha g into exp.
double swiglu(double gate, double up, double limit, double* scale_out);

struct AttnRefInput {
  int num_heads = 64;
  int num_kv_heads = 8;
  int head_dim = 64;
  int pos = 0;           // the query position; keys 0..pos exist
  int window = 0;        // 0: all keys; else the last `window` keys including pos
  double scale = 0.125;  // multiplies q.k
  const uint16_t* q = nullptr;      // [num_heads][head_dim] bf16
  const uint16_t* k = nullptr;      // [pos + 1][num_kv_heads][head_dim] bf16, by position
  const uint16_t* v = nullptr;
  const uint16_t* sinks = nullptr;  // [num_heads] bf16
};
// out [num_heads][head_dim]; scale = sum_j p_j |v_j| / (sum_j p_j + p_sink).
RefVec attention(const AttnRefInput& in);

struct TopKRef {
  std::vector<int> index;      // descending logits, ties to the lower index
  std::vector<double> weight;  // softmax over the chosen logits
};
TopKRef router_topk(const float* logits, int num_experts, int k);

// Index of the largest value, lowest index on ties (NaN never wins).
size_t argmax(const double* v, size_t n);

}  // namespace gptoss::opref
